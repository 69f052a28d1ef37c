"""SSH keys of a lab: one client key pair per lab, one host key per machine.

labctl generates each machine's host key itself and hands it to the machine at first boot, so the
key is known before the first connection and nothing is ever trusted on first use silently.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from labctl.errors import LabctlError
from labctl.run import run


@dataclass(frozen=True)
class KeyPair:
    private: Path

    @property
    def public(self) -> Path:
        return self.private.with_name(self.private.name + ".pub")

    def public_text(self) -> str:
        return self.public.read_text().strip()

    def private_text(self) -> str:
        return self.private.read_text()


def ensure_keypair(path: Path, comment: str) -> KeyPair:
    """An ed25519 key pair at path (0600) and path.pub, created when missing."""
    pair = KeyPair(path)
    if path.exists() and pair.public.exists():
        _check_mode(path)
        return pair
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    for stale in (path, pair.public):
        stale.unlink(missing_ok=True)
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path])
    path.chmod(0o600)
    return pair


def _check_mode(path: Path) -> None:
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise LabctlError(
            f"{path} is readable by other users (mode {mode:04o})",
            f"chmod 600 {path}, or delete it and run labctl up again",
        )


def host_key(state_dir: Path, machine: str) -> KeyPair:
    """The machine's own SSH host key, kept in .labctl/hostkeys/."""
    return ensure_keypair(state_dir / "hostkeys" / f"{machine}_ed25519", f"labctl-host-{machine}")


def known_hosts_line(host: str, port: int, public_text: str) -> str:
    key_type, key_data = public_text.split()[:2]
    name = host if port == 22 else f"[{host}]:{port}"
    return f"{name} {key_type} {key_data}"


# Machines of one lab are created in parallel threads, each recording its key: the file's
# read-modify-write must not interleave (other processes are kept out by the lab lock).
_known_hosts_lock = threading.Lock()


def record_host_key(known_hosts: Path, host: str, port: int, public_text: str) -> None:
    """Replace any line for host:port in known_hosts with this key (labctl owns this file)."""
    with _known_hosts_lock:
        _replace_line(known_hosts, known_hosts_line(host, port, public_text))


def _replace_line(known_hosts: Path, line: str) -> None:
    name = line.split()[0]
    kept = []
    if known_hosts.exists():
        kept = [old for old in known_hosts.read_text().splitlines() if old.split(" ", 1)[0] != name]
    known_hosts.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    from labctl.state import atomic_write

    atomic_write(known_hosts, ("\n".join([*kept, line]) + "\n").encode(), 0o600)
