"""The host ids that root and users of an unprivileged container become: root's subordinate range.

Root's range holds two blocks of 65536 ids. Container uid 0..65535 of an unprivileged LXC
machine is host uid start..start+65535 (gid likewise); that of an ns machine with a user
namespace is the next block, start+65536 up. The range is the one /etc/subuid and
/etc/subgid give root: newuidmap/newgidmap (which liblxc uses when the uidmap package is
installed) allow root nothing else, and the files are the host's register of who owns which ids.
A range that overlaps another user's subordinate ids, or a host account, would let that user act
as container root on the container's files; it is refused, never used.

All unprivileged LXC machines share one block (like LXD without security.idmap.isolated): their
pid namespaces keep them from signalling or tracing each other. ns machines get a block of their
own because one may keep the host's pid namespace (`namespaces: [mnt, user]`): sharing the LXC
block, its root would be the same host uid as every LXC machine's processes, and could signal them.
"""

from __future__ import annotations

import grp
import pwd
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from labctl.errors import HostError

SIZE = 65536  # container ids 0..65535: what a distribution's accounts and nobody (65534) need
NEED = 2 * SIZE  # one block for LXC machines, one for ns machines
SUBUID = Path("/etc/subuid")
SUBGID = Path("/etc/subgid")
FIRST = 1_000_000  # where scripts/setup-host starts looking; Debian gives users 100000 up
HINT = (
    f"give root a range of its own (scripts/setup-host does): usermod --add-subuids "
    f"{FIRST}-{FIRST + NEED - 1} --add-subgids {FIRST}-{FIRST + NEED - 1} root"
)


@dataclass(frozen=True)
class Idmap:
    """Container root is host uid `uid` and gid `gid`; SIZE ids from there are mapped."""

    uid: int
    gid: int
    size: int = SIZE

    def shifted(self, uid: int, gid: int) -> tuple[int, int]:
        """A container's (uid, gid) as host ids."""
        if not (0 <= uid < self.size and 0 <= gid < self.size):
            raise ValueError(f"{uid}:{gid} is outside the {self.size} ids a container maps")
        return self.uid + uid, self.gid + gid


@dataclass(frozen=True)
class Entry:
    """One line of /etc/subuid or /etc/subgid: owner (name or number), first id, count."""

    owner: str
    start: int
    count: int
    line: int

    def overlaps(self, start: int, size: int) -> bool:
        return self.start < start + size and start < self.start + self.count


def parse(text: str) -> list[Entry]:
    """The well-formed entries; shadow's tools skip other lines, and so does this."""
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.strip().split(":")
        if len(fields) != 3 or not fields[1].isdigit() or not fields[2].isdigit():
            continue
        entries.append(Entry(fields[0], int(fields[1]), int(fields[2]), number))
    return entries


def root_start(path: Path, accounts: Iterable[int]) -> int:
    """The first id of root's range in path: NEED ids that no other user's entry or account has."""
    try:
        entries = parse(path.read_text())
    except FileNotFoundError:
        entries = []
    except OSError as exc:
        raise HostError(f"cannot read {path}: {exc.strerror}", HINT) from exc
    ours = [e for e in entries if e.owner in ("root", "0")]
    if not ours:
        raise HostError(f"root has no subordinate ids in {path}: unprivileged containers need them", HINT)
    taken = set(accounts)
    reasons = []
    for entry in ours:
        if entry.count < NEED:
            reasons.append(f"line {entry.line} holds {entry.count} ids, fewer than {NEED}")
            continue
        clash = _clash(entry, [e for e in entries if e.owner not in ("root", "0")], taken)
        if clash is None:
            return entry.start
        reasons.append(f"line {entry.line} overlaps {clash}")
    raise HostError(f"root's subordinate ids in {path} are unusable: {'; '.join(reasons)}", HINT)


def _clash(entry: Entry, others: list[Entry], accounts: set[int]) -> str | None:
    for other in others:
        if other.overlaps(entry.start, NEED):
            return f"the range of {other.owner} (line {other.line})"
    inside = sorted(i for i in accounts if entry.start <= i < entry.start + NEED)
    return f"the host account with id {inside[0]}" if inside else None


def host_idmap(
    subuid: Path = SUBUID,
    subgid: Path = SUBGID,
    uids: Callable[[], Iterable[int]] | None = None,
    gids: Callable[[], Iterable[int]] | None = None,
) -> Idmap:
    """The LXC block of root's ranges; HostError with the usermod line when there is none to use."""
    users = uids or (lambda: (p.pw_uid for p in pwd.getpwall()))
    groups = gids or (lambda: (g.gr_gid for g in grp.getgrall()))
    return Idmap(root_start(subuid, users()), root_start(subgid, groups()))


def ns_idmap(subuid: Path = SUBUID, subgid: Path = SUBGID) -> Idmap:
    """The ns block: the SIZE ids right after the LXC block."""
    lxc = host_idmap(subuid, subgid)
    return Idmap(lxc.uid + SIZE, lxc.gid + SIZE)


def require_user_namespaces(proc: Path = Path("/proc/sys/user/max_user_namespaces")) -> None:
    if proc.exists() and proc.read_text().strip() == "0":
        raise HostError("user namespaces are disabled", "sysctl -w user.max_user_namespaces=15000")


def let_traverse(top: Path, leaf: Path) -> None:
    """Give others search permission (x, never listing) on top and every directory down to leaf.

    Container root is a host uid with no other rights: liblxc and runc reach the rootfs as that
    uid from inside the user namespace, so it must pass through labctl's private directories.
    Directories above top are the host's: they are checked, not changed.
    """
    leaf, top = leaf.resolve(), top.resolve()  # no link in the chain: each directory is itself
    if leaf != top and top not in leaf.parents:
        raise ValueError(f"{leaf} is not under {top}")
    for directory in reversed([leaf, *leaf.parents]):
        mode = directory.stat().st_mode & 0o7777
        if mode & 0o001:
            continue
        if directory == top or top in directory.parents:
            directory.chmod(mode | 0o011)
        else:
            raise HostError(
                f"{directory} is not searchable by other users, so container root cannot reach {leaf}",
                f"chmod o+x {directory}, or move LABCTL_HOME",
            )
