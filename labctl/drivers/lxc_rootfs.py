"""What labctl writes into an LXC machine's overlay upper dir before it boots.

Files put in the upper dir shadow the box's, so every container of one box gets its own identity
without copying the box: hostname, static network config, resolver, the lab's SSH key for root,
the machine's own SSH host key (already in .labctl/known_hosts), and cloud-init switched off
(labctl did its job already; skipping it saves seconds per boot).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from labctl.templating import render

# Units that only fail in a container (there is no root block device to remount), turning
# `systemctl is-system-running` into "degraded" for nothing.
MASKED = ("systemd-remount-fs.service",)


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


def seed(lower: Path, upper: Path, identity: Identity) -> None:
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
        write(lower, upper, relative, text, mode)
    for unit in MASKED:
        mask(lower, upper, unit)


def _hosts(identity: Identity) -> str:
    own = identity.nics[0].address.split("/")[0] if identity.nics else "127.0.1.1"
    return f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n{own}\t{identity.hostname}\n"


def write(lower: Path, upper: Path, relative: str, text: str, mode: int) -> None:
    """upper/relative, its parent dirs made with the owner and mode they have in the box."""
    target = upper / relative
    make_parents(lower, upper, Path(relative).parent)
    if target.is_symlink():  # e.g. a resolv.conf link left by an earlier boot
        target.unlink()
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "w") as handle:
        os.fchmod(handle.fileno(), mode)  # O_CREAT's mode is masked by umask and ignored if it exists
        handle.write(text)


def mask(lower: Path, upper: Path, unit: str) -> None:
    """systemctl mask, done from outside: a unit file linked to /dev/null."""
    relative = Path("etc/systemd/system") / unit
    make_parents(lower, upper, relative.parent)
    link = upper / relative
    if not link.is_symlink():
        link.unlink(missing_ok=True)
        link.symlink_to("/dev/null")


def make_parents(lower: Path, upper: Path, relative: Path) -> None:
    current_lower, current_upper = lower, upper
    for part in relative.parts:
        current_lower, current_upper = current_lower / part, current_upper / part
        if current_upper.is_dir():
            continue
        info = current_lower.stat() if current_lower.is_dir() else None
        current_upper.mkdir(mode=0o755)
        if info is not None:  # an upper dir's owner and mode hide the box's: keep them equal
            os.chown(current_upper, info.st_uid, info.st_gid)
            current_upper.chmod(info.st_mode & 0o7777)
        elif part == ".ssh":
            current_upper.chmod(0o700)
