"""What a box-less ns machine sees of the host: its programs and configuration, not its data.

A machine without a box runs the host's own binaries. Binding the host's whole `/` would also
hand container root (which keeps CAP_DAC_OVERRIDE) every secret on the host: /etc/shadow, SSH
host keys, /root, /home, other labs' keys under /var/lib/labctl or next to their labfiles. So the
root is an allow-list instead:

    /usr, /etc      the host's, bound read-only (nosuid, nodev)
    /bin, /lib ...  the host's top-level links into /usr (merged /usr), copied as links
    /root /home /var /run /opt /srv /mnt   empty tmpfs: the host's data stays out of sight
    /proc /sys /dev /tmp                   as for every ns machine (labctl.drivers.oci)

and under /etc every entry a host user without privileges could not read (mode without o+r, or a
directory without o+rx) is masked: the machine's root sees /etc as any host user sees it.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BOUND = ("usr", "etc")  # read-only binds of the host's own directories
EMPTY = ("root", "home", "var", "run", "opt", "srv", "mnt", "media")  # each an empty tmpfs
MOUNT_POINTS = ("proc", "sys", "dev", "tmp")  # mounted by every ns machine's config
_OPTIONS = {"root": "mode=700", "home": "mode=755"}
# A hostile or huge /etc must not make bundle writing slow: past this many entries, stop looking.
_WALK_LIMIT = 200_000


@dataclass(frozen=True)
class HostView:
    masked: tuple[str, ...]  # container paths runc hides (/dev/null over files, tmpfs over dirs)
    links: tuple[tuple[str, str], ...]  # top-level (name, target) links of the host's /


def survey(host_root: Path = Path("/")) -> HostView:
    """The view of host_root a box-less machine gets: unreadable /etc entries and / links."""
    masked = tuple(sorted("/" + str(p.relative_to(host_root)) for p in _unreadable(host_root / "etc")))
    return HostView(masked, _top_links(host_root))


def _unreadable(top: Path) -> list[Path]:
    """Entries under top that others may not read; a masked directory is not descended into."""
    found: list[Path] = []
    seen = 0
    for directory, dirnames, filenames in os.walk(top, followlinks=False):
        hidden = set()
        for name in [*dirnames, *filenames]:
            seen += 1
            path = Path(directory, name)
            try:
                info = path.lstat()
            except OSError:
                continue
            if not _world_readable(info):
                found.append(path)
                hidden.add(name)
        dirnames[:] = [d for d in dirnames if d not in hidden]
        if seen > _WALK_LIMIT:
            found.append(top)  # cannot vouch for the rest: hide all of it rather than guess
            break
    return found


def _world_readable(info: os.stat_result) -> bool:
    if stat.S_ISLNK(info.st_mode):
        return True  # a link's own mode means nothing; its target is checked where it lives
    if stat.S_ISDIR(info.st_mode):
        return info.st_mode & 0o005 == 0o005
    return bool(info.st_mode & 0o004)


def _top_links(host_root: Path) -> tuple[tuple[str, str], ...]:
    """Links like bin -> usr/bin of a merged-/usr host; only relative ones into usr/ are kept."""
    links = []
    for entry in sorted(host_root.iterdir()):
        if entry.is_symlink():
            target = str(entry.readlink())
            if target.startswith(("usr/", "/usr/")) and "/" not in entry.name:
                links.append((entry.name, target))
    return tuple(links)


def build_skeleton(rootfs: Path, view: HostView) -> None:
    """rootfs: empty mount points for the binds and tmpfs above, and the host's /usr links."""
    rootfs.mkdir(mode=0o755, parents=True, exist_ok=True)
    for name in (*BOUND, *EMPTY, *MOUNT_POINTS):
        (rootfs / name).mkdir(mode=0o755, exist_ok=True)
    for name, target in view.links:
        if name in (*BOUND, *EMPTY, *MOUNT_POINTS):
            continue  # a mount point made above wins over a host link of the same name
        link = rootfs / name  # one component of the host's / listing, never resolved
        if link.is_symlink() and str(link.readlink()) == target:
            continue
        if link.is_symlink():
            link.unlink()
        link.symlink_to(target)


def mounts(host_root: str = "/") -> list[dict[str, Any]]:
    """The OCI mounts of the view: read-only binds of /usr and /etc, tmpfs over the data dirs."""
    binds = [
        {
            "destination": f"/{name}",
            "type": "bind",
            "source": str(Path(host_root) / name),
            "options": ["rbind", "ro", "nosuid", "nodev"],
        }
        for name in BOUND
    ]
    empties = [
        {
            "destination": f"/{name}",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "nodev", _OPTIONS.get(name, "mode=755"), "size=65536k"],
        }
        for name in EMPTY
    ]
    return binds + empties
