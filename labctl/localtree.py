"""Reading a file step's `src` out of the lab directory, never following a link out of it.

labctl runs as root and the lab directory belongs to whoever wrote the labfile, so what a step
copies into a machine must be what that person could have put there, not what a link leads to:
a link to /etc/shadow or to /root would upload the host's secrets. The rules:

- `src` lies inside the lab directory, checked when the labfile is validated and again here,
  since the tree may have changed in between;
- every directory on the way to `src`, and every one inside it, is opened with O_NOFOLLOW from
  the one before, and a file is opened the same way and checked to be the very file the walk
  saw, so a link swapped in mid-copy is refused, not followed;
- a symlink inside `src` is copied as a link when it stays inside `src`, both as written
  (the machine resolves it there) and as resolved here; any other link is refused, named;
- devices, FIFOs and sockets are refused, and so is a file with several hard links owned by
  someone other than the lab directory's owner (a hard link to a root-only file).
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from labctl.errors import ProvisionError

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a FIFO swapped in after the walk's lstat must not hang the open.
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
MAX_DEPTH = 128  # each level holds a directory fd open
DIR, FILE, LINK = "directory", "file", "symlink"


@dataclass(frozen=True)
class Entry:
    """One thing to copy: path relative to src ('' for src itself), what it is, its lstat."""

    path: str
    kind: str
    stat: os.stat_result
    target: str = ""  # a link's target, as written
    dir_fd: int = -1  # a file's directory, open while the walk is at this entry
    name: str = ""  # a file's name in dir_fd


def walk(lab_root: Path, src: Path) -> Generator[Entry, None, None]:
    """Every entry of src (a file or a tree), parents before children, names sorted."""
    src = _inside(lab_root, src)
    owner = _owner(lab_root)
    parent = _open_dir_path(src.parent)
    try:
        first = _lstat(parent, src.name, src)
        if stat.S_ISLNK(first.st_mode):
            raise ProvisionError(f"{src} is now a symlink", "the lab directory changed; run labctl again")
        yield from _entries(_Walk(src, owner), parent, src.name, "", first)
    finally:
        os.close(parent)


def check(lab_root: Path, src: Path) -> None:
    """Raise ProvisionError if walk() would refuse src; reads no file's content."""
    for _entry in walk(lab_root, src):
        pass


def read_file(lab_root: Path, path: Path) -> bytes:
    """The content of one regular file of the lab directory (a shell step's script), read by
    the same rules as a tree."""
    for entry in walk(lab_root, path):
        if entry.kind != FILE:
            break
        with open_file(entry, path) as (stream, _size):
            return stream.read()
    raise ProvisionError(f"{path} is not a regular file", "the lab directory changed; run labctl again")


@contextlib.contextmanager
def open_file(entry: Entry, src: Path) -> Iterator[tuple[IO[bytes], int]]:
    """The file entry names, opened without following links, with its size: the same inode the
    walk saw, or ProvisionError."""
    where = _shown(src, entry.path)
    try:
        fd = os.open(entry.name, FILE_FLAGS, dir_fd=entry.dir_fd)
    except OSError as exc:
        raise ProvisionError(f"cannot read {where}: {exc.strerror}") from exc
    with os.fdopen(fd, "rb") as stream:
        now = os.fstat(fd)
        if not stat.S_ISREG(now.st_mode) or (now.st_dev, now.st_ino) != (
            entry.stat.st_dev,
            entry.stat.st_ino,
        ):
            raise ProvisionError(f"{where} changed while labctl was copying it", "run the step again")
        yield stream, now.st_size


@dataclass(frozen=True)
class _Walk:
    src: Path
    owner: int  # the lab directory's owner


def _entries(walk: _Walk, dir_fd: int, name: str, rel: str, st: os.stat_result) -> Iterator[Entry]:
    where = _shown(walk.src, rel)
    if stat.S_ISREG(st.st_mode):
        if st.st_nlink > 1 and st.st_uid != walk.owner:
            raise ProvisionError(
                f"{where} is a hard link to a file owned by uid {st.st_uid}, not by the lab's owner",
                "copy the file into the lab instead of linking it",
            )
        yield Entry(rel, FILE, st, dir_fd=dir_fd, name=name)
    elif stat.S_ISLNK(st.st_mode):
        yield Entry(rel, LINK, st, target=_link_target(walk.src, dir_fd, name, rel))
    elif stat.S_ISDIR(st.st_mode):
        if rel.count("/") >= MAX_DEPTH:
            raise ProvisionError(f"{where} is nested more than {MAX_DEPTH} directories deep")
        yield Entry(rel, DIR, st)
        fd = _open_dir(dir_fd, name, where)
        try:
            for child in sorted(_listdir(fd, where)):
                path = f"{rel}/{child}" if rel else child
                yield from _entries(walk, fd, child, path, _lstat(fd, child, walk.src / path))
        finally:
            os.close(fd)
    else:
        raise ProvisionError(
            f"{where} is a {_kind(st.st_mode)}: a file step copies only files, directories and links"
        )


def _link_target(src: Path, dir_fd: int, name: str, rel: str) -> str:
    """The link's target when it stays inside src, both as written and as resolved on this host."""
    target = os.readlink(name, dir_fd=dir_fd)
    where = _shown(src, rel)
    hint = "copy what it points at into the directory, or make the link relative and inside it"
    if PurePosixPath(target).is_absolute():
        raise ProvisionError(f"{where} is a symlink to {target}, outside {src.name}", hint)
    # As written: what the machine resolves. As resolved here: the same unless a link inside
    # src leads elsewhere first (x -> . makes x/x/.. climb out).
    as_written = os.path.normpath(PurePosixPath(rel).parent / target)
    resolved = Path(os.path.realpath(src / PurePosixPath(rel).parent / target))
    if as_written == ".." or as_written.startswith("../") or not resolved.is_relative_to(src):
        raise ProvisionError(f"{where} is a symlink to {target}, which leaves {src.name}", hint)
    return target


def _inside(lab_root: Path, src: Path) -> Path:
    """src, absolute and free of links, when it still lies inside the lab directory."""
    root = lab_root.resolve()
    resolved = src.resolve()
    if not resolved.is_relative_to(root):
        raise ProvisionError(
            f"{src} is outside the lab's directory {root}",
            "copy it into the lab; links out of it are refused",
        )
    if resolved != src.absolute():
        raise ProvisionError(
            f"{src} now leads through a symlink", "the lab directory changed; run labctl again"
        )
    return resolved


def _owner(lab_root: Path) -> int:
    try:
        return lab_root.stat().st_uid
    except OSError as exc:
        raise ProvisionError(f"cannot read the lab directory {lab_root}: {exc.strerror}") from exc


def _open_dir_path(path: Path) -> int:
    """path (absolute, links resolved) opened from / one component at a time with O_NOFOLLOW."""
    fd = os.open("/", DIR_FLAGS)
    for part in path.parts[1:]:
        try:
            below = os.open(part, DIR_FLAGS, dir_fd=fd)
        except OSError as exc:
            raise ProvisionError(
                f"cannot open {path}: {part} is not a directory ({exc.strerror})",
                "the lab directory changed; run labctl again",
            ) from exc
        finally:
            os.close(fd)
        fd = below
    return fd


def _open_dir(dir_fd: int, name: str, where: str) -> int:
    try:
        return os.open(name, DIR_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        raise ProvisionError(f"cannot open {where}: {exc.strerror}") from exc


def _listdir(fd: int, where: str) -> list[str]:
    try:
        return os.listdir(fd)
    except OSError as exc:
        raise ProvisionError(f"cannot list {where}: {exc.strerror}") from exc


def _lstat(dir_fd: int, name: str, shown: Path) -> os.stat_result:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError as exc:
        raise ProvisionError(f"cannot read {shown}: {exc.strerror}") from exc


def _shown(src: Path, rel: str) -> str:
    return str(src / rel) if rel else str(src)


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device node"
    return "special file"
