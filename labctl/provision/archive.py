"""A tar stream of a file step's `src`, for the machine's `tar -x` (over SSH or its runtime).

Entries are owned by root (the user every labctl machine is provisioned as); regular files get the
step's mode when it has one, else their own permission bits (never setuid: the file was the lab
owner's, in the machine it is root's); directories are 0755; symlinks stay symlinks. What goes in
comes from labctl.localtree, which refuses links out of `src` and never follows one.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path, PurePosixPath

from labctl import localtree
from labctl.errors import ProvisionError
from labctl.labfile.models import FileStep


def file_archive(lab_root: Path, step: FileStep) -> tuple[bytes, str]:
    """The tar for step and the directory in the machine to unpack it in.

    A directory's contents go into dest; a file becomes dest, or dest/NAME when dest ends in /."""
    remote = PurePosixPath(step.dest) / step.src.name if step.dest.endswith("/") else PurePosixPath(step.dest)
    data, is_dir = tar_of(lab_root, step.src, step.mode, file_name=remote.name)
    return data, step.dest if is_dir else str(remote.parent)


def tar_of(lab_root: Path, src: Path, mode: int | None = None, *, file_name: str = "") -> tuple[bytes, bool]:
    """The tar archive of src, and whether src is a directory: a directory's contents are at the
    top ('./...'), a file is stored as file_name (default: its own name)."""
    buffer = io.BytesIO()
    top = ""
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for entry in localtree.walk(lab_root, src):
            if not top:  # src itself comes first: it decides where everything goes
                top = "." if entry.kind == localtree.DIR else file_name or src.name
            info = tarfile.TarInfo(f"{top}/{entry.path}" if entry.path else top)
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = int(entry.stat.st_mtime)
            if entry.kind == localtree.FILE:
                _add_file(archive, info, entry, src, mode)
                continue
            if entry.kind == localtree.DIR:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            else:
                info.type, info.mode, info.linkname = tarfile.SYMTYPE, 0o777, entry.target
            archive.addfile(info)
    return buffer.getvalue(), top == "."


def _add_file(
    archive: tarfile.TarFile, info: tarfile.TarInfo, entry: localtree.Entry, src: Path, mode: int | None
) -> None:
    info.mode = mode if mode is not None else entry.stat.st_mode & 0o777
    with localtree.open_file(entry, src) as (stream, size):
        info.size = size
        try:
            archive.addfile(info, stream)
        except OSError as exc:  # tarfile's "unexpected end of data": it shrank while being read
            raise ProvisionError(f"cannot copy {src / entry.path}: {exc}", "run the step again") from exc
