"""The problem collector every labfile check shares, and small checks used across sections."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from labctl.errors import Problem
from labctl.labfile import values
from labctl.labfile.loader import Document, Key, kind_of

T = TypeVar("T")


class Checker:
    """Holds the document and the problems found so far; helpers return None on a problem."""

    def __init__(self, document: Document) -> None:
        self.document = document
        self.problems: list[Problem] = []

    def error(self, path: Key, message: str, *, key: bool = False) -> None:
        self.problems.append(self.document.problem(path, message, key=key))

    def parse(self, path: Key, value: Any, parser: Callable[[Any], T]) -> T | None:
        try:
            return parser(value)
        except ValueError as exc:
            self.error(path, str(exc))
            return None

    def mapping(self, path: Key, value: Any, allowed: list[str], what: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.error(path, f"expected a mapping of {what}, got {kind_of(value)}")
            return {}
        for key in value:
            if key not in allowed:
                self.unknown_key((*path, key), key, allowed)
        return {k: v for k, v in value.items() if k in allowed}

    def unknown_key(self, path: Key, key: str, allowed: list[str]) -> None:
        self.error(path, f"unknown key{values.suggestion(key, allowed)}", key=True)


def check_uri(checker: Checker, path: Key, value: Any) -> str | None:
    from labctl import libvirt_uri

    uri = checker.parse(path, value, lambda v: values.text(v, "a libvirt URI such as qemu:///system"))
    if uri is None:
        return None
    problem = libvirt_uri.problem(uri)
    if problem is not None:
        checker.error(path, f"{problem}; got {values.shown(uri)}")
        return None
    return uri


def choices(enum_type: Any) -> list[str]:
    return [member.value for member in enum_type]


def choose(checker: Checker, path: Key, value: Any, enum_type: Any) -> Any:
    text = checker.parse(path, value, lambda v: values.choice(v, choices(enum_type)))
    return None if text is None else enum_type(text)
