"""The course labs shipped with labctl: list them, read their lab.yml, copy one to work in.

A lab is a directory of labs/ (shipped in the wheel as labctl/_data/labs) named like the lab:

    labfile.yml      the lab itself, `name: <lab>`, with its checks
    lab.yml          catalogue metadata: summary, up_seconds, fail_before (see LAB_KEYS)
    README.md        the lesson
    solution/solve   an executable script doing what a student would do
    ...              files the labfile refers to

lab.yml is read as strictly as a labfile: every problem is reported with file, line, column and
key, and an unknown key is refused (a typo such as `fail_befor` must not silently disable CI's
proof that the lab's checks fail before the student acts).
"""

from __future__ import annotations

import math
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labctl.errors import LabctlError, LabfileError, Problem, UsageError
from labctl.labfile import values
from labctl.labfile.checker import Checker
from labctl.labfile.loader import Key, kind_of

LABFILE = "labfile.yml"
METADATA = "lab.yml"
LAB_KEYS = ["summary", "up_seconds", "fail_before"]
# Never copied into a working copy: a lab's own state if someone ran it inside the catalogue.
SKIPPED = frozenset({".labctl", "__pycache__"})
MAX_SUMMARY = 100


@dataclass(frozen=True)
class CourseLab:
    """One lab of the catalogue, as lab.yml and its labfile describe it."""

    name: str
    directory: Path
    summary: str
    up_seconds: float
    fail_before: tuple[str, ...]
    kinds: tuple[str, ...]  # the machine kinds its labfile uses, in labfile order

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "summary": self.summary,
            "kinds": list(self.kinds),
            "up_seconds": self.up_seconds,
            "fail_before": list(self.fail_before),
        }


def catalogue_dir() -> Path:
    from labctl.paths import resource_dir

    return resource_dir("labs")


def names(root: Path | None = None) -> list[str]:
    """Every lab of the catalogue: its directories, sorted (links and dot-directories are no labs)."""
    base = root or catalogue_dir()
    return sorted(
        entry.name
        for entry in os.scandir(base)
        if entry.is_dir(follow_symlinks=False) and not entry.name.startswith((".", "_"))
    )


def find(name: str, root: Path | None = None) -> Path:
    """The directory of lab `name`; a bad or unknown name says which labs exist."""
    base = root or catalogue_dir()
    try:
        values.name(name, "lab name")
    except ValueError as exc:
        raise UsageError(f"--lab: {exc}") from None
    known = names(base)
    if name not in known:
        raise UsageError(
            f"no course lab named {name!r}{values.suggestion(name, known)}",
            f"the labs are: {', '.join(known) or 'none'} (labctl labs lists them)",
        )
    return base / name


def load(name: str, root: Path | None = None) -> CourseLab:
    """Read lab `name`: its lab.yml strictly and its labfile (validated) for the kinds it uses."""
    from labctl.labfile import load_lab

    directory = find(name, root)
    lab = load_lab(str(directory / LABFILE))
    summary, up_seconds, fail_before = read_metadata(directory / METADATA, [c.name for c in lab.checks])
    kinds = tuple(dict.fromkeys(machine.kind.value for machine in lab.machines))
    return CourseLab(name, directory, summary, up_seconds, fail_before, kinds)


def load_all(root: Path | None = None) -> list[CourseLab]:
    return [load(name, root) for name in names(root)]


def read_metadata(path: Path, checks: list[str] | None = None) -> tuple[str, float, tuple[str, ...]]:
    """summary, up_seconds and fail_before of a lab.yml; LabfileError with every problem.

    With checks (the names of the labfile's checks), every fail_before name must be one of them.
    """
    from labctl.labfile import loader

    if not path.is_file():  # the loader's own message would speak of labfiles
        raise LabfileError([Problem(str(path), 1, 1, "", f"missing: every course lab needs a {METADATA}")])
    document = loader.load(path, str(path))
    checker = Checker(document)
    checker.problems.extend(document.problems)
    top = checker.mapping((), document.data, LAB_KEYS, "lab metadata")
    for key in LAB_KEYS:
        if key not in top and isinstance(document.data, dict):
            checker.error((key,), f"missing; lab.yml needs {', '.join(LAB_KEYS)}")
    summary = checker.parse(("summary",), top.get("summary", ""), _summary)
    up_seconds = checker.parse(("up_seconds",), top.get("up_seconds", 0), _seconds)
    fail_before = _fail_before(checker, ("fail_before",), top.get("fail_before", []), checks)
    if checker.problems:
        raise LabfileError(sorted(checker.problems, key=lambda p: (p.line, p.column)))
    assert summary is not None and up_seconds is not None  # no problem means both parsed
    return summary, up_seconds, fail_before


def _summary(value: Any) -> str:
    text = values.text(value, "a one-line summary")
    if not text.strip() or "\n" in text or len(text) > MAX_SUMMARY or not text.isprintable():
        raise ValueError(f"expected one printable line of 1-{MAX_SUMMARY} characters")
    return text


def _seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected the measured seconds of `labctl up`, such as 12, got {kind_of(value)}")
    if not math.isfinite(value) or not 0 < value <= 3600:
        raise ValueError(f"expected seconds between 0 and 3600, got {value}")
    return float(value)


def _fail_before(checker: Checker, path: Key, value: Any, checks: list[str] | None) -> tuple[str, ...]:
    if not isinstance(value, list):
        checker.error(path, f"expected a list of check names, got {kind_of(value)}")
        return ()
    result: list[str] = []
    for index, item in enumerate(value):
        check = checker.parse((*path, index), item, lambda v: values.name(v, "check name"))
        if check is not None and check in result:
            checker.error((*path, index), f"{check!r} is listed twice")
        elif check is not None and checks is not None and check not in checks:
            suggestion = values.suggestion(check, checks)
            checker.error((*path, index), f"{check!r} is no check of the lab's {LABFILE}{suggestion}")
        elif check is not None:
            result.append(check)
    return tuple(result)


def copy(name: str, target: Path, root: Path | None = None) -> Path:
    """Copy lab `name` into target (made if missing, refused unless empty); returns the labfile.

    Only directories and regular files are copied, with their permission bits (solution/solve
    stays executable); a symlink is neither followed nor copied, so nothing from outside the
    lab's directory can end up in the working copy.
    """
    source = find(name, root)
    where = target.resolve()
    if where == source.resolve() or source.resolve() in where.parents:
        raise UsageError(f"{target} is inside the catalogue's lab {name}", "copy it somewhere else")
    _make_empty(target)
    _copy_tree(source, target)
    return target / LABFILE


def _make_empty(target: Path) -> None:
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise UsageError(f"{target} exists and is not a directory", "give a new or an empty directory")
    if target.is_dir() and any(target.iterdir()):
        raise UsageError(
            f"{target} is not empty; labctl init --lab copies a lab only into a new or an empty directory",
            "give another directory as the last argument, or remove this one first",
        )
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LabctlError(f"cannot create {target}: {exc.strerror}") from None


def _copy_tree(source: Path, target: Path) -> None:
    for entry in sorted(os.scandir(source), key=lambda e: e.name):
        if entry.name in SKIPPED or entry.is_symlink():
            continue
        info = entry.stat(follow_symlinks=False)
        destination = target / entry.name
        if stat.S_ISDIR(info.st_mode):
            destination.mkdir(mode=0o755)
            _copy_tree(Path(entry.path), destination)
        elif stat.S_ISREG(info.st_mode):
            _copy_file(Path(entry.path), destination, stat.S_IMODE(info.st_mode))


def _copy_file(source: Path, destination: Path, mode: int) -> None:
    # O_NOFOLLOW: a file swapped for a link after the scan is refused, not followed.
    fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as reader, open(destination, "xb") as writer:
        writer.write(reader.read())
    # The lab's bits without setuid/setgid/sticky and without write for others, whatever the source.
    destination.chmod(mode & 0o755 | 0o600)
