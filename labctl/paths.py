"""Where labctl keeps things: the box store, per-lab state, and its shipped resources."""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from labctl.errors import HostError, LabctlError

STATE_DIR_NAME = ".labctl"


def labctl_home() -> Path:
    """The machine-wide data directory: LABCTL_HOME, else /var/lib/labctl for root."""
    configured = os.environ.get("LABCTL_HOME")
    if configured:
        return Path(configured).absolute()
    if os.geteuid() == 0:
        return Path("/var/lib/labctl")
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "labctl"


def box_store() -> Path:
    return labctl_home() / "boxes"


def resource_dir(name: str) -> Path:
    """templates/, playbooks/ or boxes/: inside the installed wheel, or at the source root."""
    package_dir = Path(__file__).resolve().parent
    for candidate in (package_dir / "_data" / name, package_dir.parent / name):
        if candidate.is_dir():
            return candidate
    raise LabctlError(f"labctl's {name}/ directory is missing", "reinstall labctl")


def inside(base: Path, *parts: str) -> Path:
    """base/parts, refusing any result that escapes base (.., absolute parts, symlinks)."""
    root = base.resolve()
    target = root.joinpath(*parts).resolve()
    if target != root and root not in target.parents:
        raise LabctlError(f"path {'/'.join(parts)!r} leaves {root}")
    return target


def own_dir(path: Path, mode: int, group: int = -1) -> Path:
    """path as a directory of labctl's with exactly mode (whatever the umask or an earlier run).

    Modes here are how other host users are kept out of a lab: 0711 where the qemu user or a
    container's mapped root must pass through (search, never listing), 0700 or 0710 (group: the
    one id that must pass) below. A link or a non-directory in the way is refused, never followed.
    """
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode):
        raise HostError(f"{path} is not a directory", "move it away; labctl keeps a directory there")
    if group != -1 and info.st_gid != group:
        os.chown(path, -1, group, follow_symlinks=False)
    if stat.S_IMODE(info.st_mode) != mode:
        path.chmod(mode)
    return path
