"""Unpacking a box's root file system from an archive nobody on this host made.

A root file system legitimately holds absolute symlinks (/etc/localtime -> /usr/share/zoneinfo/UTC,
unit links into /lib/systemd): inside the machine they resolve against its own root. On the host
they point at the host's files, so the danger is not the links themselves but writing THROUGH
them. Every member is therefore checked before it is written:

- its name is relative and has no `..` (nothing lands outside the destination);
- no parent of it is a symlink, neither one from this archive nor one already on disk;
- a hard link names an earlier member the same way, never a symlink (os.link would follow it);
- device nodes are refused (the machine's /dev is made by its runtime).

What passes is extracted with owners, modes (setuid sudo) and times intact, which tarfile's
'data' and 'tar' filters would strip.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path, PurePosixPath

from labctl import run
from labctl.errors import BoxError, LabctlError


class RootfsFilter:
    """A tarfile extraction filter enforcing the rules above for one destination."""

    def __init__(self, dest: Path) -> None:
        self.dest = os.path.realpath(dest)
        self.symlinks: set[str] = set()

    def __call__(self, member: tarfile.TarInfo, path: str) -> tarfile.TarInfo:
        name = self._clean(member.name, member.name)
        if member.ischr() or member.isblk():
            raise BoxError(f"rootfs archive holds a device node: {member.name}")
        if name:
            self._check_parents(member.name, name)
        if member.issym():
            self.symlinks.add(name)
        elif member.islnk():
            target = self._clean(member.linkname, member.name)
            if target in self.symlinks or not self._inside(Path(self.dest, target)):
                raise BoxError(f"rootfs archive: hard link {member.name} -> {member.linkname} leaves the box")
        return member

    def _clean(self, name: str, member: str) -> str:
        pure = PurePosixPath(name)
        if pure.is_absolute() or ".." in pure.parts:
            raise BoxError(f"rootfs archive member {member!r} leaves the root file system")
        return "/".join(p for p in pure.parts if p != ".")

    def _check_parents(self, original: str, name: str) -> None:
        parts = name.split("/")
        for depth in range(1, len(parts)):
            if "/".join(parts[:depth]) in self.symlinks:
                raise BoxError(f"rootfs archive member {original!r} would be written through a symlink")
        if not self._inside(Path(self.dest, *parts[:-1])):
            raise BoxError(f"rootfs archive member {original!r} would be written outside the box")

    def _inside(self, path: Path) -> bool:
        real = os.path.realpath(path)
        return real == self.dest or real.startswith(self.dest + os.sep)


def extract_rootfs(tarball: Path, dest: Path) -> None:
    """Unpack rootfs.tar.zst into dest (created), refusing anything RootfsFilter refuses."""
    dest.mkdir(mode=0o755)
    proc = run.start(["zstd", "-dcq", "--", tarball], stdout=run.PIPE, stderr=run.DEVNULL)
    if proc.stdout is None:  # pragma: no cover - stdout=PIPE always gives a stream
        raise BoxError("cannot read the output of zstd")
    try:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            # S202: every member goes through RootfsFilter, which refuses what could escape.
            tar.extractall(dest, numeric_owner=True, filter=RootfsFilter(dest))  # noqa: S202
    except LabctlError:
        proc.kill()
        raise
    except (tarfile.TarError, OSError, EOFError) as exc:
        proc.kill()
        raise BoxError(f"rootfs archive is damaged: {exc}", "export the box again") from exc
    finally:
        proc.stdout.close()
        proc.wait()
    if proc.returncode != 0:
        raise BoxError(f"{tarball.name} is not a valid zstd stream", "export the box again")
