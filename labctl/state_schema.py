"""What a state.json may hold, checked on every load.

labctl acts on what it reads there: machine names become paths, container and domain names,
kinds choose a driver, URIs are connected to. A file that strays from this schema was not written
by labctl (or was damaged), so it is refused as a whole rather than half-trusted. Paths that
labctl removes are never taken from the file (see labctl.paths.removable); this schema is the
first of two fences.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable
from typing import Any

from labctl.labfile.models import Kind

Check = Callable[[Any], str | None]  # a problem with the value, or None

# Machine and box names: DNS labels, as in the labfile (fullmatch: no trailing newline).
_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
# <lab name>-<hex digest>; which digest this labfile gives is checked by labctl.state.bind.
_LAB_ID = re.compile(r"[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?-[0-9a-f]{6,32}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_TEXT = 4096


def _text(value: Any) -> str | None:
    if not isinstance(value, str):
        return f"expected text, got {type(value).__name__}"
    if len(value) > MAX_TEXT or _CONTROL.search(value):
        return "text too long or with control characters"
    return None


def _pattern(regex: re.Pattern[str], what: str) -> Check:
    def check(value: Any) -> str | None:
        problem = _text(value)
        if problem is None and not regex.fullmatch(value):
            problem = f"{value!r} is not a {what}"
        return problem

    return check


def _choice(*allowed: str) -> Check:
    def check(value: Any) -> str | None:
        return None if value in allowed else f"{value!r} is not one of {', '.join(allowed)}"

    return check


def _number(value: Any) -> str | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return None if ok else f"expected a number, got {type(value).__name__}"


def _count(value: Any) -> str | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**31
    return None if ok else "expected a count (a whole number from 0)"


def _durations(value: Any) -> str | None:
    if not isinstance(value, dict):
        return f"expected a mapping of phase names to seconds, got {type(value).__name__}"
    for phase, seconds in value.items():
        problem = _text(phase) or _number(seconds)
        if problem:
            return f"phase {phase!r}: {problem}"
    return None


def _address(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        return f"expected an IPv4 address, got {type(value).__name__}"
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return f"{value!r} is not an IPv4 address"
    return None


def _uri(value: Any) -> str | None:
    from labctl import libvirt_uri

    return _text(value) or libvirt_uri.problem(value)


def _optional(check: Check) -> Check:
    return lambda value: None if value is None else check(value)


_label = _pattern(_LABEL, "DNS label")


# Every field any driver records, and what it may hold. A new field is added here with its check.
def _boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else f"expected true or false, got {type(value).__name__}"


def _idmap(value: Any) -> str | None:
    """{"uid": N, "gid": N, "size": N} of an unprivileged LXC machine (labctl.idmap), or null."""
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {"uid", "gid", "size"}:
        return "expected {uid, gid, size} or null"
    if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**32 for v in value.values()):
        return "expected unsigned 32-bit ids"
    return None


RECORD_FIELDS: dict[str, Check] = {
    "kind": _choice(*(k.value for k in Kind)),
    "box": _optional(_label),
    # creating/starting: an up began this and has not seen the machine ready; created: ready once.
    "status": _choice("creating", "starting", "created"),
    "progress": _optional(_text),  # the phase of create or start under way; None when none is
    "provisioned_steps": _count,
    "provision_digest": _optional(_text),
    "created_at": _number,
    "provisioned_at": _number,
    "accel": _choice("kvm", "tcg"),
    "domain": _text,
    "libvirt_uri": _uri,
    "address": _address,
    "console_log": _text,
    "container": _text,
    "runtime": _text,
    "phases": _durations,
    "last_start_phases": _durations,
    "privileged": _boolean,
    "idmap": _idmap,
}

TOP_FIELDS: dict[str, Check] = {
    "format": lambda v: None if isinstance(v, int) and not isinstance(v, bool) else "expected an integer",
    "lab_id": _pattern(_LAB_ID, "lab id (<lab name>-<hex digits>)"),
    "labfile": lambda v: _text(v) or (None if v.startswith("/") else f"{v!r} is not an absolute path"),
    "machines": lambda v: None if isinstance(v, dict) else f"expected a mapping, got {type(v).__name__}",
}
REQUIRED = ("format", "lab_id", "machines")


def problems(data: Any) -> list[str]:
    """Everything in a decoded state.json that labctl did not write; empty when it is sound."""
    if not isinstance(data, dict):
        return [f"expected a JSON object, got {type(data).__name__}"]
    found = _fields(data, TOP_FIELDS, "")
    found += [f"missing {key!r}" for key in REQUIRED if key not in data]
    machines = data.get("machines")
    if isinstance(machines, dict):
        for name, record in machines.items():
            found += _machine(name, record)
    return found


def _machine(name: Any, record: Any) -> list[str]:
    where = f"machines.{name!r}"
    if not isinstance(name, str) or not _LABEL.fullmatch(name):
        return [f"{where}: machine names are DNS labels"]
    if not isinstance(record, dict):
        return [f"{where}: expected a mapping, got {type(record).__name__}"]
    return _fields(record, RECORD_FIELDS, f"{where}.")


def _fields(mapping: dict[Any, Any], checks: dict[str, Check], prefix: str) -> list[str]:
    found = []
    for key, value in mapping.items():
        check = checks.get(key) if isinstance(key, str) else None
        if check is None:
            found.append(f"{prefix}{key!r}: not a field labctl writes")
        elif (problem := check(value)) is not None:
            found.append(f"{prefix}{key}: {problem}")
    return found
