"""Id-shifted copies of a box's rootfs: the lower layer of unprivileged LXC machines.

Container root is host uid U (labctl.idmap). The box's files belong to host root, so inside they
would show up as nobody and sshd, sudo or apt would refuse them. Neither layer can be id-mapped
at mount time here (liblxc maps only "dir" rootfs; overlayfs refuses idmapped layers, EINVAL), so
each box gets one copy per range, every owner moved up by U:G, made once and shared:

    STORE/NAME/rootfs-shifted-U-G/     cp -a of rootfs/, then one walk (about 5 s for debian-12)

It goes with its box: a rebuild, import or `labctl box remove` replaces the whole box directory.
Its top directory is 0700 and container root's: other host users cannot reach the setuid
binaries inside (which, owned by U, would give them container root's host uid).

What chown changes besides the owner is put back: setuid and setgid bits (chown clears them), POSIX
ACL entries naming users and groups (shifted as well), and file capabilities, which chown removes.
Those are written back as version 3 with root id U, so they take effect inside the container's
user namespace and nowhere else: the copy's ping grants a host user nothing.
"""

from __future__ import annotations

import os
import stat
import struct
import tempfile
from pathlib import Path

from labctl import console
from labctl.box.store import SHIFTED_PREFIX, Box, BoxStore
from labctl.errors import BoxError
from labctl.idmap import Idmap
from labctl.paths import inside, remove_tree
from labctl.run import run

CAPS = "security.capability"
ACLS = ("system.posix_acl_access", "system.posix_acl_default")
_REVISION = 0xFF000000
_V1, _V2, _V3 = 0x01000000, 0x02000000, 0x03000000
_EFFECTIVE = 0x000001
_ACL_USER, _ACL_GROUP = 0x02, 0x08


def shifted_path(box: Box, idmap: Idmap) -> Path:
    return inside(box.path, f"{SHIFTED_PREFIX}{idmap.uid}-{idmap.gid}")


def ensure_shifted(store: BoxStore, box: Box, idmap: Idmap) -> Path:
    """The box's rootfs shifted by idmap, made now if missing (others wait; a killed run's
    partial copy is discarded). The rename at the end is what makes a copy complete."""
    if box.rootfs is None:
        raise BoxError(f"box {box.name} has no rootfs for containers", f"labctl box build {box.name}")
    target = shifted_path(box, idmap)
    if target.is_dir():
        return target
    with store.waiting_lock(box.name, "shift"):
        if target.is_dir():  # made by whoever held the lock before us
            return target
        with store.lock(box.name):  # and no build, import or removal of the box meanwhile
            for stale in box.path.glob(f".{target.name}.partial-*"):
                # A killed labctl's cp may live on and still write there: never reuse its dir.
                remove_tree(stale, store.path, ignore_errors=True)
            partial = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=box.path))
            title = f"copying box {box.name} for unprivileged containers (host uid {idmap.uid})"
            try:
                with console.step(title):
                    run(["cp", "-a", "--reflink=auto", "--no-target-directory", box.rootfs, partial])
                    shift_tree(partial, idmap)
                    partial.chmod(0o700)  # owned by container root now: it alone passes
                    partial.rename(target)
            except BaseException:
                remove_tree(partial, store.path, ignore_errors=True)
                raise
    return target


def shift_tree(root: Path, idmap: Idmap) -> None:
    """Move every owner in root up by idmap, in place; links are changed, never followed."""
    seen: set[tuple[int, int]] = set()

    def fail(error: OSError) -> None:
        raise error

    for directory, dirs, files in os.walk(root, onerror=fail):  # links to directories: not entered
        for name in (*dirs, *files):
            _shift(Path(directory, name), idmap, seen)
    _shift(root, idmap, seen)


def _shift(path: Path, idmap: Idmap, seen: set[tuple[int, int]]) -> None:
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) and info.st_nlink > 1:
        if (info.st_dev, info.st_ino) in seen:  # a hard link: shifted once, by its first name
            return
        seen.add((info.st_dev, info.st_ino))
    try:
        uid, gid = idmap.shifted(info.st_uid, info.st_gid)
        kept = {} if stat.S_ISLNK(info.st_mode) else _kept_xattrs(path, info, idmap)
    except ValueError as exc:
        raise BoxError(f"cannot map {path} into an unprivileged container: {exc}") from exc
    if stat.S_ISLNK(info.st_mode):
        os.lchown(path, uid, gid)
        return
    os.lchown(path, uid, gid)
    if info.st_mode & (stat.S_ISUID | stat.S_ISGID):
        path.chmod(stat.S_IMODE(info.st_mode))  # not a link (checked above): nothing followed
    for name, value in kept.items():
        os.setxattr(path, name, value, follow_symlinks=False)


def _kept_xattrs(path: Path, info: os.stat_result, idmap: Idmap) -> dict[str, bytes]:
    """The ACLs (ids shifted) and file capabilities (as v3, root id U) to write back after chown."""
    names = set(os.listxattr(path, follow_symlinks=False))
    kept = {
        name: acl_shifted(os.getxattr(path, name, follow_symlinks=False), idmap)
        for name in ACLS
        if name in names
    }
    if CAPS in names and stat.S_ISREG(info.st_mode):
        kept[CAPS] = caps_v3(os.getxattr(path, CAPS, follow_symlinks=False), idmap.uid, str(path))
    return kept


def caps_v3(value: bytes, rootid: int, where: str = "a file") -> bytes:
    """A security.capability value of any version as version 3, its root id moved up by rootid."""
    magic = int.from_bytes(value[:4], "little") if len(value) >= 4 else 0
    revision = magic & _REVISION
    if revision == _V1 and len(value) == 12:
        data, base = value[4:12] + bytes(8), 0
    elif revision == _V2 and len(value) == 20:
        data, base = value[4:20], 0
    elif revision == _V3 and len(value) == 24:
        data, base = value[4:20], int.from_bytes(value[20:24], "little")
    else:
        raise BoxError(f"{where} has file capabilities labctl cannot read ({len(value)} bytes, {magic:#x})")
    header = (_V3 | (magic & _EFFECTIVE)).to_bytes(4, "little")
    return header + data + (base + rootid).to_bytes(4, "little")


def acl_shifted(value: bytes, idmap: Idmap) -> bytes:
    """A POSIX ACL xattr with its named-user and named-group entries moved up by idmap."""
    if len(value) < 4 or (len(value) - 4) % 8:
        raise BoxError(f"a POSIX ACL of {len(value)} bytes is malformed")
    out = bytearray(value[:4])
    for offset in range(4, len(value), 8):
        tag, perm, ident = struct.unpack_from("<HHI", value, offset)
        if tag == _ACL_USER:
            ident = idmap.shifted(ident, 0)[0]
        elif tag == _ACL_GROUP:
            ident = idmap.shifted(0, ident)[1]
        out += struct.pack("<HHI", tag, perm, ident)
    return bytes(out)
