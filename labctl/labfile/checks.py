"""The `checks:` section: named progress checks a lab's student (or grader, or CI) runs with
`labctl check`. Each check is one probe (a command, an HTTP request or a TCP connect) run on
one machine or on the host, with an expectation and optional retries."""

from __future__ import annotations

import ipaddress
import re
import shlex
import urllib.parse
from collections.abc import Sequence
from typing import Any

from labctl.labfile import values
from labctl.labfile.checker import Checker
from labctl.labfile.loader import Key, kind_of
from labctl.labfile.models import HOST, Check, HttpProbe, Machine, Probe, RunProbe, TcpProbe

CHECK_KEYS = ["name", "step", "description", "on", "run", "http", "tcp", "retries", "interval", "timeout"]
RUN_KEYS = ["exit", "stdout", "stderr"]  # beside `run` in the check itself
HTTP_KEYS = ["url", "status", "body"]
TCP_KEYS = ["host", "port", "open"]
PROBES = ("run", "http", "tcp")
MAX_CHECKS = 1000
MAX_PATTERN = 1000  # characters of a regular expression
STEP = re.compile(r"[a-z0-9][a-z0-9.-]{0,31}")
HOSTNAME = re.compile(
    r"(?=.{1,253}\Z)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)


class ChecksBuilder:
    """Validates the `checks:` list against the lab's machines, collecting every problem."""

    def __init__(self, checker: Checker, machines: Sequence[Machine], declared: set[str]) -> None:
        self.checker = checker
        self.machines = {m.name for m in machines}
        # Machine names declared in the labfile, valid or not: a check on an invalid machine is
        # not reported again, the machine's own problem already is.
        self.declared = declared
        self.names: dict[str, int] = {}

    def build(self, raw: Any) -> list[Check]:
        if raw is None:
            return []
        if not isinstance(raw, list):
            self.checker.error(("checks",), f"expected a list of checks, got {kind_of(raw)}")
            return []
        if len(raw) > MAX_CHECKS:
            self.checker.error(("checks",), f"{len(raw)} checks; at most {MAX_CHECKS}")
            return []
        if HOST in self.machines:
            self.checker.error(
                ("machines", HOST),
                f"a machine may not be named {HOST!r} in a lab with checks: `on: {HOST}` means the host",
                key=True,
            )
        built = [self._check(("checks", index), spec) for index, spec in enumerate(raw)]
        return [check for check in built if check is not None]

    def _check(self, path: Key, spec: Any) -> Check | None:
        fields = self.checker.mapping(path, spec, CHECK_KEYS + RUN_KEYS, "check settings")
        if not isinstance(spec, dict):
            return None
        name = self._name(path, fields)
        on = self._on(path, fields)
        probe = self._probe(path, fields)
        step = self._optional(path, fields, "step", _step)
        description = self._optional(path, fields, "description", _one_line)
        retries = self._optional(path, fields, "retries", lambda v: values.integer(v, 0, 1000))
        interval = self._optional(path, fields, "interval", lambda v: values.duration(v, 0, 600))
        timeout = self._optional(path, fields, "timeout", lambda v: values.duration(v, 0.1, 3600))
        if name is None or on is None or probe is None:
            return None
        return Check(
            name=name,
            on=on,
            probe=probe,
            step=step,
            description=description,
            retries=0 if retries is None else retries,
            interval=1.0 if interval is None else interval,
            timeout=30.0 if timeout is None else timeout,
        )

    def _optional(self, path: Key, fields: dict[str, Any], key: str, parser: Any) -> Any:
        return self.checker.parse((*path, key), fields[key], parser) if key in fields else None

    def _name(self, path: Key, fields: dict[str, Any]) -> str | None:
        if "name" not in fields:
            self.checker.error(
                path, "missing key 'name': every check has a name, such as web-answers", key=True
            )
            return None
        name = self.checker.parse((*path, "name"), fields["name"], lambda v: values.name(v, "check name"))
        if name is None:
            return None
        first = self.names.setdefault(name, int(path[-1]))
        if first != path[-1]:
            self.checker.error((*path, "name"), f"check {name!r} is already defined (checks[{first}])")
            return None
        return name

    def _on(self, path: Key, fields: dict[str, Any]) -> str | None:
        if "on" not in fields:
            self.checker.error(path, f"missing key 'on': a machine of this lab, or {HOST}", key=True)
            return None
        on = fields["on"]
        if on == HOST:
            return HOST
        if isinstance(on, str) and on in self.machines:
            return on
        if isinstance(on, str) and on in self.declared:
            return None  # the machine's own problem is reported
        known = " | ".join([*sorted(self.machines), HOST])
        shown = values.shown(on) if isinstance(on, str) else kind_of(on)
        hint = values.suggestion(on, [*self.machines, HOST]) if isinstance(on, str) else ""
        self.checker.error((*path, "on"), f"expected a machine of this lab ({known}), got {shown}{hint}")
        return None

    def _probe(self, path: Key, fields: dict[str, Any]) -> Probe | None:
        given = [key for key in PROBES if key in fields]
        if len(given) != 1:
            what = "none" if not given else " and ".join(given)
            self.checker.error(
                path, f"a check has exactly one of run, http or tcp; this one has {what}", key=True
            )
            return None
        stray = [key for key in RUN_KEYS if key in fields and given[0] != "run"]
        for key in stray:
            self.checker.error(
                (*path, key), f"'{key}' belongs to a run check; this one is an {given[0]} check", key=True
            )
        if given[0] == "run":
            return self._run(path, fields)
        if given[0] == "http":
            return self._http((*path, "http"), fields["http"])
        return self._tcp((*path, "tcp"), fields["tcp"])

    def _run(self, path: Key, fields: dict[str, Any]) -> RunProbe | None:
        argv = self.checker.parse((*path, "run"), fields["run"], _command)
        exit_code = self._optional(path, fields, "exit", lambda v: values.integer(v, 0, 255))
        stdout = self._optional(path, fields, "stdout", _pattern)
        stderr = self._optional(path, fields, "stderr", _pattern)
        if argv is None or (exit_code is None and "exit" in fields):
            return None
        if ("stdout" in fields and stdout is None) or ("stderr" in fields and stderr is None):
            return None
        run = fields["run"]
        shown = run if isinstance(run, str) else shlex.join(run)
        return RunProbe(argv, shown, 0 if exit_code is None else exit_code, stdout, stderr)

    def _http(self, path: Key, raw: Any) -> HttpProbe | None:
        fields = self.checker.mapping(path, raw, HTTP_KEYS, "HTTP check settings (url, status, body)")
        if not isinstance(raw, dict):
            return None
        if "url" not in fields:
            self.checker.error(path, "missing key 'url' (for example url: http://10.213.7.10/)", key=True)
            return None
        url = self.checker.parse((*path, "url"), fields["url"], _url)
        status = self._optional(path, fields, "status", lambda v: values.integer(v, 100, 599))
        body = self._optional(path, fields, "body", _pattern)
        if url is None or ("status" in fields and status is None) or ("body" in fields and body is None):
            return None
        return HttpProbe(url, 200 if status is None else status, body)

    def _tcp(self, path: Key, raw: Any) -> TcpProbe | None:
        fields = self.checker.mapping(path, raw, TCP_KEYS, "TCP check settings (host, port, open)")
        if not isinstance(raw, dict):
            return None
        missing = [key for key in ("host", "port") if key not in fields]
        for key in missing:
            self.checker.error(path, f"missing key '{key}'", key=True)
        host = self._optional(path, fields, "host", _host)
        port = self._optional(path, fields, "port", lambda v: values.integer(v, 1, 65535))
        expect_open = self._optional(path, fields, "open", values.boolean)
        if missing or host is None or port is None or ("open" in fields and expect_open is None):
            return None
        return TcpProbe(host, port, True if expect_open is None else expect_open)


def _step(value: Any) -> str:
    if not isinstance(value, str) or not STEP.fullmatch(value):
        shown = values.shown(value) if isinstance(value, str) else kind_of(value)
        raise ValueError(
            f"expected a step label such as 1-uts (lowercase letters, digits, '.' and '-', "
            f"at most 32), got {shown}"
        )
    return value


def _one_line(value: Any) -> str:
    text = values.text(value, "one line of text")
    if "\n" in text.strip() or len(text) > 200:
        raise ValueError("a description is one line of at most 200 characters")
    return text.strip()


def _command(value: Any) -> tuple[str, ...]:
    """Shell text runs with sh -c; a list is the argv itself (no shell)."""
    if isinstance(value, str):
        text = values.text(value, "a command")
        if not text.strip():
            raise ValueError("the command is empty")
        return ("sh", "-c", text)
    if isinstance(value, list) and value and all(isinstance(word, str) for word in value):
        for word in value:
            values.text(word, "a command word")
        return tuple(value)
    if isinstance(value, list) and value:
        index, word = next((i, w) for i, w in enumerate(value) if not isinstance(w, str))
        raise ValueError(f"word {index} of the command is {kind_of(word)}; quote it to make it text")
    got = "an empty list" if value == [] else kind_of(value)
    raise ValueError(f"expected shell text or a non-empty list of words, got {got}")


def _pattern(value: Any) -> re.Pattern[str]:
    text = values.text(value, "a regular expression")
    if len(text) > MAX_PATTERN:
        raise ValueError(f"a regular expression of at most {MAX_PATTERN} characters, got {len(text)}")
    try:
        return re.compile(text, re.MULTILINE)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression ({exc}): {values.shown(text)}") from None


def _url(value: Any) -> str:
    text = values.text(value, "a URL such as http://10.213.7.10/")
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an http:// or https:// URL with a host, got {values.shown(text)}")
    if any(ch.isspace() or ord(ch) < 32 for ch in text):
        raise ValueError(f"a URL may not contain spaces or control characters, got {values.shown(text)}")
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise ValueError(f"the URL's port is not a number from 0 to 65535: {values.shown(text)}") from None
    return text


def _host(value: Any) -> str:
    text = values.text(value, "a host name or IPv4 address")
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        pass
    if not HOSTNAME.fullmatch(text) or text.replace(".", "").isdigit():
        raise ValueError(f"expected a host name or IPv4 address, got {values.shown(text)}")
    return text
