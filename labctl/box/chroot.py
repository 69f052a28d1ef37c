"""Running commands inside a box's root file system while it is being built.

The API file systems (/proc, /sys, /dev) and the shared package cache are mounted for the length
of a `with mounted(...)` block and are always unmounted, even after an error or Ctrl-C. Cleanup
reads /proc/self/mountinfo rather than trusting a list of what we mounted, so it also removes
mounts that debootstrap left behind when it was killed.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from labctl import run
from labctl.errors import CommandError

# A clean environment: the host's locale, proxies or PYTHON* variables must not leak into
# maintainer scripts.
CHROOT_ENV = {
    "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "DEBIAN_FRONTEND": "noninteractive",
    "DEBCONF_NONINTERACTIVE_SEEN": "true",
    "HOME": "/root",
}

# Tells invoke-rc.d that no service may start in the chroot (exit 101 = action forbidden).
POLICY_RC_D = "#!/bin/sh\n# labctl: no daemons start while a box is being built\nexit 101\n"


def chroot(root: Path, argv: Sequence[str], *, timeout: float | None = None) -> run.Result:
    """Run argv inside root with a clean environment."""
    return run.run(["chroot", root, "/usr/bin/env", "-i", *_env_args(), *argv], timeout=timeout)


def _env_args() -> list[str]:
    return [f"{key}={value}" for key, value in CHROOT_ENV.items()]


@contextlib.contextmanager
def mounted(root: Path, package_cache: Path) -> Iterator[None]:
    """/proc, /sys and /dev inside root, plus package_cache as apt's archive directory."""
    try:
        run.run(["mount", "-t", "proc", "proc", root / "proc"])
        run.run(["mount", "-t", "sysfs", "sysfs", root / "sys"])
        _private_dev(root / "dev")
        archives = root / "var/cache/apt/archives"
        archives.mkdir(parents=True, exist_ok=True)
        run.run(["mount", "--bind", package_cache, archives])
        yield
    finally:
        unmount_under(root)


# The device nodes package scripts need: (name, major, minor).
DEVICE_NODES = [
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
]


def _private_dev(dev: Path) -> None:
    """A fresh /dev with only the basic nodes, never the host's: maintainer scripts in the
    chroot (udev's among them) chgrp device nodes by the *chroot's* group ids, which once turned
    the host's /dev/kvm over to another group and stalled every libvirt domain start."""
    run.run(["mount", "-t", "tmpfs", "-o", "mode=0755,nosuid", "labctl-dev", dev])
    for name, major, minor in DEVICE_NODES:
        run.run(["mknod", "-m", "0666", dev / name, "c", str(major), str(minor)])
    (dev / "pts").mkdir()
    run.run(["mount", "-t", "devpts", "-o", "newinstance,ptmxmode=0666,mode=0620", "devpts", dev / "pts"])
    (dev / "shm").mkdir()
    (dev / "shm").chmod(0o1777)
    (dev / "ptmx").symlink_to("pts/ptmx")
    (dev / "fd").symlink_to("/proc/self/fd")
    for number, stream in enumerate(("stdin", "stdout", "stderr")):
        (dev / stream).symlink_to(f"/proc/self/fd/{number}")


def mounts_under(path: Path) -> list[Path]:
    """Mount points at or below path, deepest first (the order to unmount them in)."""
    base = os.path.realpath(path)
    found = []
    with open("/proc/self/mountinfo", encoding="utf-8") as info:
        for line in info:
            point = _unescape(line.split()[4])
            if point == base or point.startswith(base + "/"):
                found.append(Path(point))
    return sorted(set(found), key=lambda p: len(p.parts), reverse=True)


def unmount_under(path: Path) -> None:
    """Unmount everything at or below path; a busy mount is detached lazily rather than kept."""
    if not path.exists():
        return
    for point in mounts_under(path):
        try:
            run.run(["umount", point])
        except CommandError:
            run.run(["umount", "--lazy", point], check=False)


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo octal.
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 4 <= len(field) and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)
