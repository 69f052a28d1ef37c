"""The one jinja2 environment: sandboxed, StrictUndefined, XML-escaped for *.xml.j2.

Templates live in templates/<what they produce>/. A template error names the template and line.
"""

from __future__ import annotations

import functools
import json
import shlex
from typing import Any

from labctl.errors import LabctlError
from labctl.paths import resource_dir


@functools.cache
def _environment() -> Any:
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(
        loader=jinja2.FileSystemLoader(str(resource_dir("templates"))),
        undefined=jinja2.StrictUndefined,
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("xml", "xml.j2", "html", "html.j2"), default=False
        ),
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["shquote"] = shlex.quote
    env.filters["tojson"] = _tojson
    env.filters["yamlstr"] = _yaml_string
    return env


def _tojson(value: Any, indent: int | None = None) -> str:
    return json.dumps(value, indent=indent, sort_keys=False)


def _yaml_string(value: str) -> str:
    # A JSON string is a valid YAML double-quoted scalar, with every special character escaped.
    return json.dumps(str(value))


def render(template: str, **context: Any) -> str:
    """Render templates/<template> with context; errors name the template and line."""
    import jinja2

    try:
        return str(_environment().get_template(template).render(**context))
    except jinja2.TemplateNotFound as exc:
        raise LabctlError(f"template {template} not found", "reinstall labctl") from exc
    except jinja2.TemplateSyntaxError as exc:
        raise LabctlError(f"template {exc.filename or template}:{exc.lineno}: {exc.message}") from exc
    except jinja2.UndefinedError as exc:
        line = _template_line(exc)
        raise LabctlError(f"template {template}{line}: {exc.message}") from exc


def _template_line(exc: BaseException) -> str:
    tb = exc.__traceback__
    line = ""
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.endswith(".j2"):
            line = f":{tb.tb_lineno}"
        tb = tb.tb_next
    return line
