"""Read a labfile into plain data plus the line and column of every key and value.

PyYAML's own constructor would lose positions, keep the last of two duplicate keys silently and
expand alias bombs without limit, so labctl walks the composed node graph itself with budgets on
size, depth and expanded nodes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from labctl.errors import LabfileError, Problem

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 50
MAX_NODES = 50_000
MERGE_TAG = "tag:yaml.org,2002:merge"

Key = tuple[str | int, ...]
Position = tuple[int, int]

_Loader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class Document:
    """The labfile's data with positions; `where(path)` finds the closest known position."""

    file: str
    data: Any
    values: dict[Key, Position] = field(default_factory=dict)
    keys: dict[Key, Position] = field(default_factory=dict)
    # Problems found while reading (duplicate keys); the schema adds its own and reports all.
    problems: list[Problem] = field(default_factory=list)

    def where(self, path: Key, *, key: bool = False) -> Position:
        table = self.keys if key else self.values
        probe = path
        while probe:
            if probe in table:
                return table[probe]
            if probe in self.values:
                return self.values[probe]
            probe = probe[:-1]
        return self.values.get((), (1, 1))

    def problem(self, path: Key, message: str, *, key: bool = False) -> Problem:
        line, column = self.where(path, key=key)
        return Problem(self.file, line, column, dotted(path), message)


def dotted(path: Key) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def load(path: Path, display: str | None = None) -> Document:
    """Read and parse `path`; any problem is raised as a LabfileError."""
    shown = display or str(path)
    text = _read_text(path, shown)
    return parse(text, shown)


def parse(text: str, shown: str) -> Document:
    def fail(line: int, column: int, message: str) -> LabfileError:
        return LabfileError([Problem(shown, line, column, "", message)])

    try:
        _check_depth(text, fail)
        node = yaml.compose(text, Loader=_Loader)
    except yaml.reader.ReaderError as exc:
        # libyaml counts the offset in UTF-8 bytes, PyYAML's own reader in characters.
        offset = exc.position
        if _Loader is not yaml.SafeLoader:
            offset = len(text.encode()[:offset].decode(errors="ignore"))
        line = text.count("\n", 0, offset) + 1
        column = offset - (text.rfind("\n", 0, offset) + 1) + 1
        code = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "?")
        raise fail(
            line, column, f"not valid YAML: the character U+{code:04X} is not allowed in a YAML file"
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise fail(line, column, f"not valid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise fail(1, 1, f"not valid YAML: {exc}") from None
    if node is None:
        raise fail(1, 1, "the labfile is empty; `labctl init` writes a starter labfile")
    document = Document(shown, None)
    walker = _Walker(document)
    document.data = walker.walk(node, ())
    document.problems.extend(walker.problems)
    if not isinstance(document.data, dict):
        line, column = document.where(())
        raise fail(
            line, column, f"expected a mapping of keys (name, machines, ...), got {kind_of(document.data)}"
        )
    return document


def _read_text(path: Path, shown: str) -> str:
    def fail(message: str) -> LabfileError:
        return LabfileError([Problem(shown, 1, 1, "", message)])

    try:
        if path.is_dir():
            raise fail("is a directory; give the labfile itself with -f PATH")
        with open(path, "rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise fail("no such file; `labctl init` writes a starter labfile, -f names another") from None
    except PermissionError:
        raise fail("cannot read the labfile: permission denied") from None
    except OSError as exc:
        raise fail(f"cannot read the labfile: {exc.strerror}") from None
    if len(raw) > MAX_BYTES:
        raise fail(
            f"the labfile is larger than {MAX_BYTES // 1024} KiB; a labfile this large is not supported"
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        message = f"not UTF-8: byte 0x{raw[exc.start]:02x} cannot be decoded"
        raise LabfileError([Problem(shown, line, column, "", message)]) from None


def _check_depth(text: str, fail: Any) -> None:
    """Refuse very deep nesting before composing: the composer recurses once per level. Refuse
    too many values too: composing them into Python nodes is what takes the time."""
    depth = 0
    values = 0
    try:
        for event in yaml.parse(text, Loader=_Loader):
            if isinstance(event, yaml.ScalarEvent | yaml.CollectionStartEvent):
                values += 1
                if values > MAX_NODES:
                    mark = event.start_mark
                    line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
                    raise fail(line, column, f"the document holds more than {MAX_NODES} values")
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    mark = event.start_mark
                    line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
                    raise fail(line, column, f"nested more than {MAX_DEPTH} levels deep")
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.MarkedYAMLError as exc:
        # libyaml has its own depth limit, met while scanning ahead of the events we count.
        if "nesting depth" in str(exc.problem):
            mark = exc.problem_mark
            line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            raise fail(line, column, f"nested more than {MAX_DEPTH} levels deep") from None
        # Any other syntax error is reported by compose, with its position.


class _Walker:
    """Turns nodes into plain values, recording positions, duplicates and the expansion budget."""

    def __init__(self, document: Document) -> None:
        self.document = document
        self.problems: list[Problem] = []
        self.expanded = 0
        # Collections being walked right now: meeting one again means an alias inside itself.
        self.active: set[int] = set()
        self.constructor = yaml.constructor.SafeConstructor()

    def walk(self, node: yaml.Node, path: Key) -> Any:
        self.expanded += 1
        if self.expanded > MAX_NODES:
            raise LabfileError(
                [
                    self.document.problem(
                        path,
                        f"the document expands to more than {MAX_NODES} values through its aliases",
                    )
                ]
            )
        self.document.values.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node)
        if len(path) > MAX_DEPTH:  # aliases can nest deeper than the text does
            raise self._fatal(node, path, f"nested more than {MAX_DEPTH} levels deep (through aliases)")
        with self._entered(node, path):
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, path)
            return [self.walk(item, (*path, index)) for index, item in enumerate(node.value)]

    @contextlib.contextmanager
    def _entered(self, node: yaml.Node, path: Key) -> Iterator[None]:
        if id(node) in self.active:
            raise self._fatal(node, path, "an alias refers to the collection it is in (a recursive alias)")
        self.active.add(id(node))
        try:
            yield
        finally:
            self.active.discard(id(node))

    def _fatal(self, node: yaml.Node, path: Key, message: str) -> LabfileError:
        position = (node.start_mark.line + 1, node.start_mark.column + 1)
        return LabfileError([*self.problems, self._at(position, path, message)])

    def _scalar(self, node: yaml.Node) -> Any:
        try:
            return self.constructor.construct_object(node)
        except Exception:
            # PyYAML's scalar constructors fail in many ways on hostile text: an integer of
            # thousands of digits (ValueError), `!!timestamp x` (AttributeError), bad base64
            # (YAMLError). Whatever the reason, keep the text: the schema judges it like any
            # other wrong value, with its position.
            return node.value

    def _mapping(self, node: yaml.MappingNode, path: Key) -> dict[str, Any]:
        result: dict[str, Any] = {}
        merged: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == MERGE_TAG:
                merged.update(self._merge(value_node, path))
                continue
            key = self._key(key_node, path)
            if key is None:
                continue
            key_path = (*path, key)
            position = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if key in result:
                first = self.document.keys[key_path]
                self.problems.append(
                    self._at(position, key_path, f"duplicate key (first given at line {first[0]})")
                )
                continue
            self.document.keys[key_path] = position
            result[key] = self.walk(value_node, key_path)
        return {**merged, **result}

    def _merge(self, node: yaml.Node, path: Key) -> dict[str, Any]:
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        merged: dict[str, Any] = {}
        for source in reversed(sources):
            if not isinstance(source, yaml.MappingNode):
                self.problems.append(self.document.problem(path, "'<<' merges only mappings"))
                continue
            with self._entered(source, path):
                merged.update(self._mapping(source, path))
        return merged

    def _key(self, node: yaml.Node, path: Key) -> str | None:
        if isinstance(node, yaml.ScalarNode):
            return str(node.value)
        position = (node.start_mark.line + 1, node.start_mark.column + 1)
        self.problems.append(self._at(position, path, "keys must be plain names, not mappings or lists"))
        return None

    def _at(self, position: Position, path: Key, message: str) -> Problem:
        return Problem(self.document.file, position[0], position[1], dotted(path), message)


def kind_of(value: Any) -> str:
    """How a YAML value reads to a user, for 'expected X, got Y' messages."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "a boolean (YAML reads yes/no/on/off/true/false as booleans; quote it if you meant text)"
    if isinstance(value, int):
        return f"a number ({value})" if abs(value) < 10**15 else "a very large number"
    if isinstance(value, float):
        return f"a number ({value:g})"
    if isinstance(value, str):
        return f"text {value!r}" if len(value) <= 40 else "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__
