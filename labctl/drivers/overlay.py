"""Host-side mounts of container root filesystems: OverlayFS over a box.

Every function is idempotent so that a create killed half-way can be completed by the next one:
mounting what is already mounted does nothing, unmounting what is not mounted does nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

from labctl.errors import DriverError
from labctl.run import run

# mount(8) and the kernel's mountinfo parser split overlay options on these characters.
_UNSAFE = (",", ":", "\\", "\n")


def mount_points() -> set[Path]:
    """Mount points of this mount namespace, with mountinfo's octal escapes decoded."""
    points = set()
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as handle:
        for line in handle:
            field = line.split(" ")[4]
            points.add(Path(_unescape(field)))
    return points


def _unescape(field: str) -> str:
    return field.encode().decode("unicode_escape") if "\\" in field else field


def is_mounted(target: Path) -> bool:
    return target.resolve() in mount_points()


def mount_overlay(lower: Path, upper: Path, work: Path, target: Path) -> None:
    """target = lower (read-only) + upper (this machine's changes). Work must be on upper's fs."""
    check_paths(lower, upper, work, target)
    for path in (upper, work, target):
        path.mkdir(parents=True, exist_ok=True)
    if is_mounted(target):
        return
    # nosuid, nodev: the mount is visible on the host, and what container root planted in upper/
    # (a setuid shell, a device node of a host disk) must not work through it for anyone. An ns
    # machine runs as root and needs neither; its /dev is runc's own tmpfs.
    options = f"nosuid,nodev,lowerdir={lower},upperdir={upper},workdir={work}"
    run(["mount", "-t", "overlay", "overlay", "-o", options, target], hint=_overlay_hint(lower))


def check_paths(*paths: Path) -> None:
    """Refuse paths that overlay options (and liblxc's overlay:lower:upper) cannot carry."""
    for path in paths:
        if any(char in str(path) for char in _UNSAFE):
            raise DriverError(
                f"cannot use {path} in an overlay: it contains ',', ':', '\\' or a newline",
                "move the box store or LABCTL_HOME to a plain path",
            )


def _overlay_hint(lower: Path) -> str:
    return f"check that {lower} exists and that the kernel has overlay (modprobe overlay)"


def unmount(target: Path) -> None:
    """Unmount target until nothing is mounted there; lazily when a process still holds it."""
    for _ in range(8):
        if not target.exists() or not is_mounted(target):
            return
        result = run(["umount", target], check=False)
        if result.returncode != 0 and is_mounted(target):
            run(["umount", "--lazy", target])
    if is_mounted(target):
        raise DriverError(f"{target} is still mounted", f"unmount it by hand: umount -R {target}")


def owned_by(path: Path, uid: int, gid: int) -> None:
    """chown path itself (not its tree): the overlay root a user namespace's root may write in."""
    os.chown(path, uid, gid)
