"""The id-shifted rootfs of unprivileged LXC machines, on small stand-in trees (needs root: chown)."""

from __future__ import annotations

import json
import os
import struct
import threading
from pathlib import Path

import pytest

from labctl.box import BoxStore
from labctl.box.shift import acl_shifted, caps_v3, ensure_shifted, shift_tree, shifted_path
from labctl.errors import BoxError
from labctl.idmap import Idmap

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="chown to other users needs root")
IDMAP = Idmap(1000000, 2000000)
# cap_net_raw=ep as setcap writes it (version 2, effective), the box's /usr/bin/ping
PING_CAPS = struct.pack("<IIIII", 0x02000001, 1 << 13, 0, 0, 0)
# user::rwx group::r-x group:4:r-x mask::r-x other::r-x, like the box's /var/log/journal
JOURNAL_ACL = struct.pack(
    "<I" + "HHI" * 5,
    2,
    *(0x01, 7, 0xFFFFFFFF),
    *(0x04, 5, 0xFFFFFFFF),
    *(0x08, 5, 4),
    *(0x10, 5, 0xFFFFFFFF),
    *(0x20, 5, 0xFFFFFFFF),
)


def stand_in_rootfs(root: Path) -> Path:
    """A few files with what a Debian rootfs has: setuid, setgid, links, a hard link, ACL, caps."""
    (root / "usr/bin").mkdir(parents=True)
    (root / "var/log/journal").mkdir(parents=True)
    su = root / "usr/bin/su"
    su.write_text("#!/bin/true\n")
    su.chmod(0o4755)
    agent = root / "usr/bin/ssh-agent"
    agent.write_text("agent")
    os.chown(agent, 0, 103)
    agent.chmod(0o2755)
    (root / "usr/bin/gunzip").write_text("gzip")
    os.link(root / "usr/bin/gunzip", root / "usr/bin/uncompress")
    ping = root / "usr/bin/ping"
    ping.write_text("ping")
    os.setxattr(ping, "security.capability", PING_CAPS)
    os.setxattr(root / "var/log/journal", "system.posix_acl_access", JOURNAL_ACL)
    home = root / "home/student"
    home.mkdir(parents=True)
    os.chown(home, 1000, 1000)
    (root / "bin").symlink_to("usr/bin")
    return root


def test_owners_move_up_and_setuid_acl_and_caps_survive(tmp_path: Path) -> None:
    outside = tmp_path / "host-file"
    outside.write_text("the host's")
    root = stand_in_rootfs(tmp_path / "rootfs")
    (root / "escape").symlink_to(outside)  # a link out of the tree must not be followed

    shift_tree(root, IDMAP)

    def owner(path: Path) -> tuple[int, int]:
        info = path.lstat()
        return info.st_uid, info.st_gid

    assert owner(root) == (1000000, 2000000)
    assert owner(root / "usr/bin/su") == (1000000, 2000000)
    assert (root / "usr/bin/su").stat().st_mode & 0o7777 == 0o4755  # chown cleared it; restored
    assert owner(root / "usr/bin/ssh-agent") == (1000000, 2000103)
    assert (root / "usr/bin/ssh-agent").stat().st_mode & 0o7777 == 0o2755
    assert owner(root / "home/student") == (1001000, 2001000)
    assert owner(root / "usr/bin/uncompress") == (1000000, 2000000)  # a hard link: shifted once
    assert owner(root / "bin") == (1000000, 2000000) and owner(root / "escape") == (1000000, 2000000)
    assert owner(outside) == (0, 0)  # the link's target is untouched
    caps = os.getxattr(root / "usr/bin/ping", "security.capability")
    assert struct.unpack("<IIIIII", caps) == (0x03000001, 1 << 13, 0, 0, 0, 1000000)
    acl = os.getxattr(root / "var/log/journal", "system.posix_acl_access")
    assert struct.unpack_from("<HHI", acl, 4 + 2 * 8) == (0x08, 5, 2000004)


def test_ids_a_container_cannot_map_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    root.mkdir()
    (root / "far").write_text("")
    os.chown(root / "far", 70000, 0)
    with pytest.raises(BoxError) as caught:
        shift_tree(root, IDMAP)
    assert "far" in caught.value.message


def test_capability_and_acl_formats() -> None:
    assert caps_v3(PING_CAPS, 5)[-4:] == (5).to_bytes(4, "little")
    v3 = caps_v3(PING_CAPS, 5)
    assert caps_v3(v3, 10)[-4:] == (15).to_bytes(4, "little")  # a v3 root id moves up too
    v1 = struct.pack("<III", 0x01000000, 1 << 13, 0)
    assert struct.unpack("<IIIIII", caps_v3(v1, 7)) == (0x03000000, 1 << 13, 0, 0, 0, 7)
    with pytest.raises(BoxError):
        caps_v3(b"\x00\x00", 1)
    assert acl_shifted(JOURNAL_ACL, IDMAP)[:4] == JOURNAL_ACL[:4]
    with pytest.raises(BoxError):
        acl_shifted(JOURNAL_ACL[:-1], IDMAP)


def make_box(store_path: Path) -> BoxStore:
    box_dir = store_path / "mini"
    stand_in_rootfs(box_dir / "rootfs")
    meta = {
        "name": "mini",
        "artefacts": {"rootfs.tar.zst": {"size": 10, "sha256": "0" * 64}},
        "rootfs_bytes": 100,
    }
    (box_dir / "box.json").write_text(json.dumps(meta))
    return BoxStore(store_path)


def test_ensure_shifted_makes_one_copy_beside_the_box(tmp_path: Path) -> None:
    store = make_box(tmp_path / "store")
    box = store.get("mini")
    (box.path / f".{shifted_path(box, IDMAP).name}.partial-x1y2").mkdir()  # a killed earlier attempt
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(ensure_shifted(store, box, IDMAP))) for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    target = box.path / "rootfs-shifted-1000000-2000000"
    assert results == [target] * 3
    assert sorted(p.name for p in box.path.iterdir()) == ["box.json", "rootfs", target.name]
    assert target.stat().st_mode & 0o777 == 0o700 and target.stat().st_uid == 1000000
    assert (target / "usr/bin/su").stat().st_uid == 1000000
    assert (box.path / "rootfs/usr/bin/su").stat().st_uid == 0  # the box itself is unchanged
    assert store.get("mini").size == 10 + 100 + 100  # box list counts the copy
    assert store.get("mini").shifted == [target]
    store.remove("mini")
    assert not (tmp_path / "store" / "mini").exists()
