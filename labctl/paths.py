"""Where labctl keeps things: the box store, per-lab state, and its shipped resources."""

from __future__ import annotations

import contextlib
import os
import shutil
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
    """templates/, playbooks/, boxes/ or labs/: inside the installed wheel, or at the source root."""
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


def labs_dir() -> Path:
    """Where each lab's disks, overlays and bundles live, one directory per lab id."""
    return labctl_home() / "labs"


def lab_owners_dir() -> Path:
    """One file per lab id in use, naming the labfile that owns it (see labctl.state.claim_id)."""
    return labctl_home() / "owners"


def removable(path: Path, *roots: Path) -> Path:
    """path, once sure that removing it touches nothing outside roots; else LabctlError.

    Every removal labctl does goes through here (remove_tree, remove_file): the roots are
    labctl's own directories (a lab's data directory and .labctl/, the box store), derived from
    the lab id and labctl's home, while the path may hold names from a labfile or a state file.
    Links are judged as links: a symlinked last component is the link itself (removing it never
    touches its target), a symlink higher up counts where it leads; so when a root is itself a
    link, nothing under it can be removed (it all resolves elsewhere).
    """
    target = _where(path)
    for root in roots:
        base = _where(root)
        if (target == base or base in target.parents) and not _guarded(target):
            return path
    raise LabctlError(
        f"refusing to remove {path}: it is not inside labctl's own directories ({', '.join(map(str, roots))})",
        "something (a state file, a symlink) points labctl elsewhere; check it before running labctl again",
    )


def _where(path: Path) -> Path:
    """The absolute path of the directory entry itself: parents resolved, a final link kept."""
    absolute = path.absolute()
    if absolute.name in ("", ".."):  # / itself, or a name that is a step up: resolve it all
        return absolute.resolve()
    return absolute.parent.resolve() / absolute.name


def _guarded(target: Path) -> bool:
    """/, labctl's home and everything above it are never removed, whatever the roots say."""
    home = _where(labctl_home())
    return target == home or target in home.parents or target == _where(labs_dir())


def remove_tree(path: Path, *roots: Path, ignore_errors: bool = False) -> None:
    """Remove path (a directory with all it holds, or a file or link) when inside roots.

    A missing path is fine. A symlink is removed as a link, never followed; shutil.rmtree
    itself does not follow links inside the tree.
    """
    removable(path, *roots)
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        path.unlink(missing_ok=True)
    elif path.exists():
        shutil.rmtree(path, ignore_errors=ignore_errors)  # noqa: TID251 - the checked removal


def remove_file(path: Path, *roots: Path) -> None:
    """Path.unlink(missing_ok=True), when path is inside roots."""
    removable(path, *roots).unlink(missing_ok=True)
