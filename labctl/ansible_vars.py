"""What a labfile may hand to Ansible as `extra_vars`: plain data, never connection settings.

Ansible runs on this host, as root. Extra vars have the highest precedence of all, so one of them
can override what labctl's inventory says about a machine: `ansible_connection: local` (or
`ansible_host`, `ansible_ssh_common_args`, `ansible_become_exe`, `ansible_python_interpreter`...)
turns a shipped playbook's tasks into commands on the host, and `labctl_runtime` names the
program labctl's own connection plugin runs. And Ansible templates every string it is given, so
`{{ lookup('pipe', 'id') }}` in any value, at any depth, runs on the host too. So:

- names are plain identifiers, none starting with `ansible_` or `labctl_` (those are connection,
  become and interpreter settings, or labctl's inventory) and none of Ansible's magic variables;
- values are plain YAML data (text, numbers, booleans, null, lists and mappings of them), and no
  text, key or value, holds a Jinja marker (`{{`, `{%`, `{#`).

The labfile validator reports each problem with its position; ansible.run_playbook checks again
before anything runs, whatever built the variables.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterator, Mapping
from typing import Any

Where = tuple[str | int, ...]

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
RESERVED_PREFIXES = ("ansible_", "labctl_")
# Ansible's magic variables: setting one as an extra var would change what a play sees of
# its own inventory (groups, hostvars) or of its loops (item).
MAGIC = frozenset(
    {
        "environment", "group_names", "groups", "hostvars", "inventory_dir", "inventory_file",
        "inventory_hostname", "inventory_hostname_short", "item", "omit", "play_hosts",
        "playbook_dir", "role_name", "role_names", "role_path", "vars",
    }
)  # fmt: skip
JINJA_MARKERS = ("{{", "{%", "{#")


def problems(extra_vars: Mapping[Any, Any]) -> Iterator[tuple[Where, str, bool]]:
    """(where below extra_vars, what is wrong, whether it is the key) for every problem."""
    for name, value in extra_vars.items():
        message = _name_problem(name)
        if message:
            yield (str(name),), message, True
        else:
            yield from _value_problems((name,), value)


def check(extra_vars: Mapping[Any, Any]) -> str | None:
    """The first problem as one line ('extra_vars.KEY: message'), or None when there is none."""
    for path, message, _key in problems(extra_vars):
        return f"extra_vars.{'.'.join(str(p) for p in path)}: {message}"
    return None


def _name_problem(name: Any) -> str | None:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        return f"{name!r} is not a variable name: use letters, digits and _, not starting with a digit"
    prefix = next((p for p in RESERVED_PREFIXES if name.lower().startswith(p)), None)
    if prefix:
        return (
            f"{name!r}: variables starting with {prefix} set how Ansible reaches the machine "
            "(or labctl's inventory) and cannot be set here"
        )
    if name in MAGIC:
        return f"{name!r} is one of Ansible's magic variables and cannot be set here"
    return None


def _value_problems(top: Where, value: Any) -> Iterator[tuple[Where, str, bool]]:
    # Iterative, and each container once: an alias may make the data a graph, even a cycle.
    seen: set[int] = set()
    pending: deque[tuple[Where, Any]] = deque([(top, value)])
    while pending:
        path, item = pending.popleft()
        if isinstance(item, (dict, list)):
            if id(item) in seen:
                continue
            seen.add(id(item))
        if isinstance(item, dict):
            for key, inner in item.items():
                if not isinstance(key, str):
                    yield (*path, str(key)), f"keys are text here, got {type(key).__name__} {key!r}", True
                elif _templated(key):
                    yield (*path, key), f"{key!r} cannot be a key: {_RULE}", True
                else:
                    pending.append(((*path, key), inner))
        elif isinstance(item, list):
            pending.extend(((*path, i), inner) for i, inner in enumerate(item))
        elif isinstance(item, str):
            if _templated(item):
                yield path, f"{_RULE} (Ansible would evaluate it on this host)", False
        elif not (item is None or isinstance(item, (bool, int, float))):
            yield (
                path,
                f"expected text, a number, a boolean, a list or a mapping, got {type(item).__name__}",
                False,
            )


_RULE = "text with {{, {% or {# is a Jinja template"


def _templated(text: str) -> bool:
    return any(marker in text for marker in JINJA_MARKERS)
