"""Unpacking a box's root file system from an archive nobody on this host made.

A root file system legitimately holds absolute symlinks (/etc/localtime -> /usr/share/zoneinfo/UTC,
unit links into /lib/systemd): inside the machine they resolve against its own root. On the host
they point at the host's files, so the danger is not the links themselves but writing THROUGH
them, or through a link an earlier member of the same archive made. So labctl extracts by itself,
into a fresh directory, and never resolves a path it writes:

- every name is relative with no `..`, and each member is written once (a directory may repeat);
- each parent is opened from the destination's file descriptor one component at a time with
  O_NOFOLLOW, and must be a directory this archive made: never a link, never a file;
- files are created with O_CREAT|O_EXCL|O_NOFOLLOW, directories with mkdir, links with
  symlink/link: none of them follows or replaces anything already there;
- a hard link names a regular file extracted earlier from this archive (never a link, never a
  directory, never a path outside it);
- device nodes, FIFOs and any other special type are refused (the runtime makes /dev).

Owners, modes and times are kept, setuid and setgid bits included: a box's /usr/bin/passwd and
sudo need them, and they exist only under the box's rootfs/. That directory is created 0700 and
owned by root whatever the archive says about `.`, so no other host user can reach (and run) a
setuid file inside it; containers see their overlay's upper directory as /, not this one.

tarfile's own 'data' filter would strip those bits and refuse the absolute links, and 'tar' or
'fully_trusted' resolve paths on disk, so neither is used.
"""

from __future__ import annotations

import contextlib
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import IO

from labctl import run
from labctl.errors import BoxError, LabctlError

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
DIR, FILE, LINK = "directory", "file", "symlink"


def clean_name(name: str, member: str) -> str:
    """The member's path inside the tree ('' for its top), or BoxError if it could leave it."""
    pure = PurePosixPath(name)
    if pure.is_absolute() or ".." in pure.parts or "\0" in name:
        raise BoxError(f"rootfs archive member {member!r} leaves the root file system")
    return "/".join(p for p in pure.parts if p != ".")


class Extractor:
    """Writes members into one fresh directory, opened once; knows what each name it made is."""

    def __init__(self, root_fd: int, *, owners: bool) -> None:
        self.root_fd = root_fd
        self.owners = owners  # chown only as root, like tarfile
        self.made: dict[str, str] = {"": DIR}
        self.dirs: dict[str, tarfile.TarInfo] = {}  # modes and times applied last, deepest first
        self._parent: tuple[str, int] | None = None

    def add(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        name = clean_name(member.name, member.name)
        self._check_type(member)
        if name == "":
            if not member.isdir():
                raise BoxError(f"rootfs archive: its top {member.name!r} is not a directory")
            return  # the top stays 0700 root (see the module docstring)
        if name in self.made and not (member.isdir() and self.made[name] == DIR):
            raise BoxError(f"rootfs archive member {member.name!r} appears twice")
        parent_fd, leaf = self._parent_of(name, member.name)
        if member.isdir():
            self._directory(parent_fd, leaf, name, member)
        elif member.issym():
            os.symlink(member.linkname, leaf, dir_fd=parent_fd)
            self.made[name] = LINK
            self._link_metadata(parent_fd, leaf, member)
        elif member.islnk():
            self._hard_link(parent_fd, leaf, name, member)
        else:
            self._file(tar, parent_fd, leaf, name, member)

    def _check_type(self, member: tarfile.TarInfo) -> None:
        if member.ischr() or member.isblk():
            raise BoxError(f"rootfs archive holds a device node: {member.name}")
        if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
            kind = "a FIFO" if member.isfifo() else f"an entry of type {member.type!r}"
            raise BoxError(f"rootfs archive holds {kind}: {member.name}", "only files, directories and links")

    def _parent_of(self, name: str, original: str) -> tuple[int, str]:
        """An fd on the directory holding name (made as needed) and name's last component."""
        parent, _, leaf = name.rpartition("/")
        if self._parent is not None and self._parent[0] == parent:
            return self._parent[1], leaf
        fd = self._open_dir(parent, original, create=True)
        if self._parent is not None:
            os.close(self._parent[1])
        self._parent = (parent, fd)
        return fd, leaf

    def _open_dir(self, name: str, original: str, *, create: bool) -> int:
        """Walk to directory name from the top, never through a link; the caller closes the fd."""
        fd = os.dup(self.root_fd)
        done = ""
        try:
            for part in name.split("/") if name else []:
                done = f"{done}/{part}" if done else part
                kind = self.made.get(done)
                if kind is None and create:
                    os.mkdir(part, 0o755, dir_fd=fd)
                    self.made[done] = kind = DIR
                if kind != DIR:
                    raise BoxError(f"rootfs archive member {original!r} would be written through a {kind}")
                # O_NOFOLLOW as well as the bookkeeping: a link here fails with ELOOP, not opened.
                below = os.open(part, DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = below
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _directory(self, parent_fd: int, leaf: str, name: str, member: tarfile.TarInfo) -> None:
        if name not in self.made:
            os.mkdir(leaf, 0o700, dir_fd=parent_fd)  # its own mode once everything is inside
            self.made[name] = DIR
        self.dirs[name] = member

    def _file(
        self, tar: tarfile.TarFile, parent_fd: int, leaf: str, name: str, member: tarfile.TarInfo
    ) -> None:
        source = tar.extractfile(member)
        if source is None:  # pragma: no cover - isreg() members always have data
            raise BoxError(f"cannot read rootfs archive member {member.name}")
        fd = os.open(leaf, NEW_FILE_FLAGS, 0o600, dir_fd=parent_fd)
        self.made[name] = FILE
        with source, os.fdopen(fd, "wb") as out:
            copied = _copy(source, out)
            if copied != member.size:
                raise BoxError(f"rootfs archive member {member.name} is truncated")
            out.flush()
            self._metadata(fd, member)

    def _hard_link(self, parent_fd: int, leaf: str, name: str, member: tarfile.TarInfo) -> None:
        target = clean_name(member.linkname, member.name)
        if self.made.get(target) != FILE:
            raise BoxError(
                f"rootfs archive: hard link {member.name} -> {member.linkname} does not name a file "
                "extracted before it"
            )
        target_parent, _, target_leaf = target.rpartition("/")
        target_fd = self._open_dir(target_parent, member.name, create=False)
        try:
            os.link(target_leaf, leaf, src_dir_fd=target_fd, dst_dir_fd=parent_fd, follow_symlinks=False)
        finally:
            os.close(target_fd)
        self.made[name] = FILE

    def _metadata(self, fd: int, member: tarfile.TarInfo) -> None:
        """Owner, then mode (chown clears setuid), then times, on an open file or directory."""
        if self.owners:
            os.fchown(fd, member.uid, member.gid)
        os.fchmod(fd, member.mode & 0o7777)
        os.utime(fd, (member.mtime, member.mtime))

    def _link_metadata(self, dir_fd: int, leaf: str, member: tarfile.TarInfo) -> None:
        """Owner and times of the link itself, never of what it points at."""
        if self.owners:
            os.chown(leaf, member.uid, member.gid, dir_fd=dir_fd, follow_symlinks=False)
        os.utime(leaf, (member.mtime, member.mtime), dir_fd=dir_fd, follow_symlinks=False)

    def finish(self) -> None:
        """Directories' owners, modes and times, deepest first so a read-only one is filled already."""
        self.close()
        for name in sorted(self.dirs, key=lambda n: n.count("/"), reverse=True):
            fd = self._open_dir(name, self.dirs[name].name, create=False)
            try:
                self._metadata(fd, self.dirs[name])
            finally:
                os.close(fd)

    def close(self) -> None:
        if self._parent is not None:
            os.close(self._parent[1])
            self._parent = None


def _copy(source: IO[bytes], out: IO[bytes]) -> int:
    copied = 0
    while chunk := source.read(1 << 20):
        out.write(chunk)
        copied += len(chunk)
    return copied


@contextlib.contextmanager
def _fresh_dir(dest: Path) -> Iterator[int]:
    try:
        dest.mkdir(mode=0o700)  # fails if anything, a link included, is already there
    except FileExistsError as exc:
        raise BoxError(f"cannot unpack the root file system into {dest}: it already exists") from exc
    fd = os.open(dest, DIR_FLAGS)
    try:
        os.fchmod(fd, 0o700)  # whatever the umask
        yield fd
    finally:
        os.close(fd)


def extract_rootfs(tarball: Path, dest: Path) -> None:
    """Unpack rootfs.tar.zst into dest (created), refusing anything Extractor refuses."""
    proc = run.start(["zstd", "-dcq", "--", tarball], stdout=run.PIPE, stderr=run.DEVNULL)
    if proc.stdout is None:  # pragma: no cover - stdout=PIPE always gives a stream
        raise BoxError("cannot read the output of zstd")
    try:
        with _fresh_dir(dest) as root_fd, tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            extractor = Extractor(root_fd, owners=os.geteuid() == 0)
            try:
                for member in tar:
                    extractor.add(tar, member)
                extractor.finish()
            finally:
                extractor.close()
    except LabctlError:
        proc.kill()
        raise
    except (tarfile.TarError, OSError, EOFError, OverflowError) as exc:  # OverflowError: a huge uid or time
        proc.kill()
        raise BoxError(f"rootfs archive is damaged: {exc}", "export the box again") from exc
    finally:
        proc.stdout.close()
        proc.wait()
    if proc.returncode != 0:
        raise BoxError(f"{tarball.name} is not a valid zstd stream", "export the box again")
