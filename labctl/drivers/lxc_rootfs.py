"""What labctl writes into an LXC machine's overlay upper dir before it boots.

Files put in the upper dir shadow the box's, so every container of one box gets its own identity
without copying the box: hostname, static network config, resolver, the lab's SSH key for root,
the machine's own SSH host key (already in .labctl/known_hosts), and cloud-init switched off
(labctl did its job already; skipping it saves seconds per boot).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from labctl.templating import render

# Units that only fail in a container, turning `systemctl is-system-running` into "degraded" for
# nothing: there is no root block device to remount, and an unprivileged container may not mount
# debugfs (nor should a privileged one see the host's).
MASKED = ("systemd-remount-fs.service", "sys-kernel-debug.mount")


@dataclass(frozen=True)
class Nic:
    network: str  # the lab network's name
    host: str  # veth end on the bridge
    inside: str  # eth0, eth1, ...
    bridge: str
    mac: str
    address: str  # ip/prefix
    gateway: str
    default_route: bool


@dataclass(frozen=True)
class Identity:
    hostname: str
    domain: str
    nics: tuple[Nic, ...]
    authorized_key: str  # the lab's public key, one line
    host_private: str
    host_public: str


ROOT = (0, 0)  # container root as host ids, privileged


def seed(lower: Path, upper: Path, identity: Identity, owner: tuple[int, int] = ROOT) -> None:
    """Write the identity into upper, every file owned by container root (owner, as host ids).

    In an unprivileged container a file of host root would show up as nobody's: even container
    root could not change it, and sshd would refuse a host key it does not own.
    """
    files: dict[str, tuple[str, int]] = {
        "etc/hostname": (identity.hostname + "\n", 0o644),
        "etc/hosts": (_hosts(identity), 0o644),
        "etc/cloud/cloud-init.disabled": ("", 0o644),
        "root/.ssh/authorized_keys": (identity.authorized_key.strip() + "\n", 0o600),
        "etc/ssh/ssh_host_ed25519_key": (identity.host_private, 0o600),
        "etc/ssh/ssh_host_ed25519_key.pub": (identity.host_public.strip() + "\n", 0o644),
        "etc/ssh/sshd_config.d/labctl.conf": (render("lxc/sshd.conf.j2"), 0o644),
    }
    for nic in identity.nics:
        text = render("lxc/network.j2", nic=nic, domain=identity.domain)
        files[f"etc/systemd/network/10-labctl-{nic.inside}.network"] = (text, 0o644)
    if identity.nics:
        resolv = render("lxc/resolv.conf.j2", gateway=identity.nics[0].gateway, domain=identity.domain)
        files["etc/resolv.conf"] = (resolv, 0o644)
    for relative, (text, mode) in files.items():
        write(lower, upper, relative, text, mode, owner)
    for unit in MASKED:
        mask(lower, upper, unit, owner)


def _hosts(identity: Identity) -> str:
    own = identity.nics[0].address.split("/")[0] if identity.nics else "127.0.1.1"
    return f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n{own}\t{identity.hostname}\n"


def write(
    lower: Path, upper: Path, relative: str, text: str, mode: int, owner: tuple[int, int] = ROOT
) -> None:
    """upper/relative, owned by owner, its parent dirs made with the owner and mode they have in
    the box (or owner's, 0755, where the box has none).

    The upper dir is the container's own: its root may have planted symlinks anywhere in it (a
    link at root/.ssh would turn labctl's write into one of the host's /root/.ssh). So every
    component is opened relative to its parent with O_NOFOLLOW, and whatever is not a plain
    directory on the way, or sits where the file goes, is removed (never followed) first.
    """
    relative_path = PurePosixPath(relative)
    with _parent_fd(lower, upper, relative_path.parent, owner) as parent:
        name = relative_path.name
        _remove_entry(parent, name)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(name, flags, mode, dir_fd=parent)
        with os.fdopen(fd, "w") as handle:
            os.fchown(handle.fileno(), *owner)
            os.fchmod(handle.fileno(), mode)  # O_CREAT's mode is masked by umask
            handle.write(text)


def mask(lower: Path, upper: Path, unit: str, owner: tuple[int, int] = ROOT) -> None:
    """systemctl mask, done from outside: a unit file linked to /dev/null."""
    relative = PurePosixPath("etc/systemd/system") / unit
    with _parent_fd(lower, upper, relative.parent, owner) as parent:
        with contextlib.suppress(OSError):
            if os.readlink(relative.name, dir_fd=parent) == "/dev/null":
                return
        _remove_entry(parent, relative.name)
        os.symlink("/dev/null", relative.name, dir_fd=parent)
        os.chown(relative.name, *owner, dir_fd=parent, follow_symlinks=False)


@contextlib.contextmanager
def _parent_fd(lower: Path, upper: Path, relative: PurePosixPath, owner: tuple[int, int]) -> Iterator[int]:
    """An fd of upper/relative, each directory on the way made like the box's and never a link."""
    fd = os.open(upper, _DIR_FLAGS)
    try:
        current_lower = lower
        for part in relative.parts:
            current_lower = current_lower / part
            child = _open_or_make_dir(fd, part, current_lower, owner)
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _open_or_make_dir(parent: int, name: str, lower: Path, owner: tuple[int, int]) -> int:
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent)
    except FileNotFoundError:
        pass
    except (NotADirectoryError, OSError) as exc:
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
        _remove_entry(parent, name)  # a symlink, a whiteout or a file where a directory goes
    os.mkdir(name, 0o700, dir_fd=parent)
    fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
    info = _lower_dir(lower)
    if info is not None:  # an upper dir's owner and mode hide the box's: keep them equal
        os.fchown(fd, info.st_uid, info.st_gid)  # the lower of an unprivileged one is shifted
        os.fchmod(fd, info.st_mode & 0o7777)
    else:
        os.fchown(fd, *owner)
        os.fchmod(fd, 0o700 if name == ".ssh" else 0o755)
    return fd


def _lower_dir(path: Path) -> os.stat_result | None:
    """The box's directory at path, if it is one (the box is labctl's, but links are not followed)."""
    try:
        info = path.lstat()
    except OSError:
        return None
    return info if stat.S_ISDIR(info.st_mode) else None


def _remove_entry(parent: int, name: str) -> None:
    """Remove name in parent without following it: a file, link or device, or a whole directory."""
    try:
        info = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(info.st_mode):
        shutil.rmtree(name, dir_fd=parent)  # noqa: TID251 - fd-based, inside the container's upper dir: never follows a link
    else:
        os.unlink(name, dir_fd=parent)
