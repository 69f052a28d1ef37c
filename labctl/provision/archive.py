"""A tar stream of a file or directory tree, for machines that receive files through `tar -x`.

Entries are owned by root (the user every labctl machine is provisioned as); regular files get the
step's mode when it has one, else keep their own; directories are 0755; symlinks stay symlinks.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable
from pathlib import Path


def tar_of(local: Path, arcname: str, mode: int | None = None) -> bytes:
    """The tar archive of local stored under arcname ('.' puts a directory's contents at the top)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        archive.add(local, arcname=arcname, recursive=True, filter=_owned_by_root(mode))
    return buffer.getvalue()


def _owned_by_root(mode: int | None) -> Callable[[tarfile.TarInfo], tarfile.TarInfo]:
    def normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        if info.isdir():
            info.mode = 0o755
        elif info.isfile() and mode is not None:
            info.mode = mode
        return info

    return normalise
