"""Export and import of boxes, and every way a tampered archive must be refused.

The archives are small synthetic boxes built in tmp_path: a root file system with the kinds of
entries a real one has (absolute symlinks, hard links, a setuid file) plus fake kernel files.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from labctl.box import BoxStore
from labctl.box.archive import add_box, export_box
from labctl.box.artefacts import describe
from labctl.box.store import INITRD, KERNEL, META, ROOTFS_TAR
from labctl.box.unpack import extract_rootfs
from labctl.errors import BoxError, UsageError

Member = tuple[tarfile.TarInfo, bytes | None]


def _entry(
    name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", link: str = "", mode: int = 0o644
) -> Member:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.linkname = link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, data if kind == tarfile.REGTYPE else None


def normal_rootfs() -> list[Member]:
    return [
        _entry("./", tarfile.DIRTYPE, mode=0o755),
        _entry("./usr/", tarfile.DIRTYPE, mode=0o755),
        _entry("./usr/bin/", tarfile.DIRTYPE, mode=0o755),
        _entry("./usr/bin/sudo", data=b"#!/bin/true\n", mode=0o4755),
        _entry("./usr/bin/sudoedit", tarfile.LNKTYPE, link="./usr/bin/sudo", mode=0o4755),
        _entry("./bin", tarfile.SYMTYPE, link="usr/bin"),
        _entry("./etc/", tarfile.DIRTYPE, mode=0o755),
        _entry("./etc/os-release", data=b'ID=debian\nVERSION_ID="12"\n'),
        # Absolute links are normal in a root file system and must be accepted.
        _entry("./etc/localtime", tarfile.SYMTYPE, link="/usr/share/zoneinfo/Etc/UTC"),
        _entry("./etc/mtab", tarfile.SYMTYPE, link="/proc/self/mounts"),
    ]


def write_rootfs_tar(path: Path, members: list[Member]) -> None:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    subprocess.run(["zstd", "-q", "-o", str(path)], input=raw.getvalue(), check=True)


def stage_box(directory: Path, rootfs: list[Member]) -> dict[str, object]:
    """A box directory as `box build` leaves it (without a disk, to keep the tests fast)."""
    directory.mkdir(parents=True)
    write_rootfs_tar(directory / ROOTFS_TAR, rootfs)
    (directory / KERNEL).write_bytes(b"kernel")
    (directory / INITRD).write_bytes(b"initrd")
    meta: dict[str, object] = {
        "format": 1, "name": "synthetic", "version": "1", "cmdline": "root=LABEL=labctl-root",
        "artefacts": describe(directory, (ROOTFS_TAR, KERNEL, INITRD)),
    }  # fmt: skip
    (directory / META).write_text(json.dumps(meta))
    return meta


def write_outer(
    path: Path, members: list[tuple[str, bytes]], extra: Callable[[tarfile.TarFile], None] | None = None
) -> str:
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if extra:
            extra(tar)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def archive_from(tmp_path: Path, rootfs: list[Member], name: str = "box.tar") -> tuple[Path, str]:
    staged = tmp_path / f"staged-{name}"
    stage_box(staged, rootfs)
    files = [(n, (staged / n).read_bytes()) for n in (META, ROOTFS_TAR, KERNEL, INITRD)]
    archive = tmp_path / name
    return archive, write_outer(archive, files)


@pytest.fixture
def store(tmp_path: Path) -> BoxStore:
    return BoxStore(tmp_path / "store")


def assert_nothing_stored(store: BoxStore, name: str = "web") -> None:
    assert not store.has(name)
    assert not (store.path / name).exists()
    assert list((store.path / ".staging").iterdir()) == []


def test_normal_rootfs_round_trips(tmp_path: Path, store: BoxStore) -> None:
    archive, digest = archive_from(tmp_path, normal_rootfs())
    box = add_box(store, "web", str(archive), digest)
    assert box.rootfs is not None
    assert (box.rootfs / "etc/os-release").read_text().startswith("ID=debian")
    assert (box.rootfs / "etc/localtime").readlink() == Path("/usr/share/zoneinfo/Etc/UTC")
    assert (box.rootfs / "usr/bin/sudo").stat().st_mode & 0o7777 == 0o4755
    assert (box.rootfs / "usr/bin/sudoedit").samefile(box.rootfs / "usr/bin/sudo")
    assert box.kinds == ["lxc", "ns"]
    assert oct((box.path / KERNEL).stat().st_mode & 0o777) == "0o644"

    exported = tmp_path / "exported.tar"
    again = export_box(box, exported)
    copy = add_box(store, "copy", str(exported), again)
    assert copy.sha256 != box.sha256  # renamed, so box.json differs
    assert copy.meta["artefacts"] == box.meta["artefacts"]


def test_url_with_file_scheme(tmp_path: Path, store: BoxStore) -> None:
    archive, digest = archive_from(tmp_path, normal_rootfs())
    assert add_box(store, "web", archive.as_uri(), digest.upper()).name == "web"


def test_wrong_checksum_is_refused(tmp_path: Path, store: BoxStore) -> None:
    archive, _digest = archive_from(tmp_path, normal_rootfs())
    with pytest.raises(BoxError, match="checksum mismatch"):
        add_box(store, "web", str(archive), "0" * 64)
    assert_nothing_stored(store)


def test_malformed_checksum_is_a_usage_error(tmp_path: Path, store: BoxStore) -> None:
    archive, _digest = archive_from(tmp_path, normal_rootfs())
    with pytest.raises(UsageError):
        add_box(store, "web", str(archive), "abc")


def test_flipped_byte_is_refused(tmp_path: Path, store: BoxStore) -> None:
    archive, digest = archive_from(tmp_path, normal_rootfs())
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))
    with pytest.raises(BoxError, match="checksum mismatch"):
        add_box(store, "web", str(archive), digest)
    assert_nothing_stored(store)


def test_altered_artefact_with_matching_outer_checksum_is_refused(tmp_path: Path, store: BoxStore) -> None:
    # The attacker controls the whole file and hands out its checksum: box.json still catches it.
    staged = tmp_path / "staged"
    stage_box(staged, normal_rootfs())
    files = [(n, (staged / n).read_bytes()) for n in (META, ROOTFS_TAR, KERNEL)]
    files.append((INITRD, b"evil!!"))  # same size, different bytes
    digest = write_outer(tmp_path / "box.tar", files)
    with pytest.raises(BoxError, match="does not match its checksum"):
        add_box(store, "web", str(tmp_path / "box.tar"), digest)
    assert_nothing_stored(store)


@pytest.mark.parametrize("member", [META, ROOTFS_TAR, INITRD])
def test_truncated_archive_is_refused(tmp_path: Path, store: BoxStore, member: str) -> None:
    archive, _digest = archive_from(tmp_path, normal_rootfs())
    with tarfile.open(archive) as tar:
        info = tar.getmember(member)
    cut = info.offset_data + info.size // 2  # in the middle of that member's data
    archive.write_bytes(archive.read_bytes()[:cut])
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    with pytest.raises(BoxError):
        add_box(store, "web", str(archive), digest)
    assert_nothing_stored(store)


def test_missing_box_json_is_refused(tmp_path: Path, store: BoxStore) -> None:
    staged = tmp_path / "staged"
    stage_box(staged, normal_rootfs())
    digest = write_outer(tmp_path / "box.tar", [(n, (staged / n).read_bytes()) for n in (ROOTFS_TAR, KERNEL)])
    with pytest.raises(BoxError, match=r"no box\.json"):
        add_box(store, "web", str(tmp_path / "box.tar"), digest)
    assert_nothing_stored(store)


@pytest.mark.parametrize("name", ["../evil", "/tmp/evil", "rootfs/../../evil", "sub/box.json"])
def test_outer_member_outside_the_root_is_refused(tmp_path: Path, store: BoxStore, name: str) -> None:
    staged = tmp_path / "staged"
    stage_box(staged, normal_rootfs())
    files = [(n, (staged / n).read_bytes()) for n in (META, ROOTFS_TAR, KERNEL, INITRD)]
    digest = write_outer(tmp_path / "box.tar", [*files, (name, b"x")])
    with pytest.raises(BoxError, match="unexpected archive member"):
        add_box(store, "web", str(tmp_path / "box.tar"), digest)
    assert_nothing_stored(store)
    assert not (tmp_path / "evil").exists()


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE])
def test_outer_link_is_refused(tmp_path: Path, store: BoxStore, kind: bytes) -> None:
    staged = tmp_path / "staged"
    stage_box(staged, normal_rootfs())
    files = [(n, (staged / n).read_bytes()) for n in (META, ROOTFS_TAR, KERNEL)]

    def add_link(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(INITRD)
        info.type = kind
        info.linkname = "/etc/shadow" if kind == tarfile.SYMTYPE else "../../etc/shadow"
        tar.addfile(info)

    digest = write_outer(tmp_path / "box.tar", files, add_link)
    with pytest.raises(BoxError, match="not a regular file"):
        add_box(store, "web", str(tmp_path / "box.tar"), digest)
    assert_nothing_stored(store)


def top() -> Member:
    return _entry("./", tarfile.DIRTYPE, mode=0o755)


LEAVES = "leaves the root file system"
THROUGH_LINK = "would be written through a symlink"
TWICE = "appears twice"
HARD_LINK = "does not name a file extracted before it"


def _escape_cases(outside: Path) -> dict[str, tuple[str, list[Member]]]:
    """Archives that would write outside the tree, each with the reason it must be refused for;
    outside holds victim (a file) and vdir (a directory)."""
    victim, vdir = str(outside / "victim"), str(outside / "vdir")
    up = "../../../../../../../../.."  # from anywhere under tmp_path to /
    sym, lnk, d = tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.DIRTYPE
    return {
        "dotdot": (LEAVES, [top(), _entry("./../escaped", data=b"x")]),
        "dotdot deep": (LEAVES, [top(), _entry("./etc/../../escaped", data=b"x")]),
        "absolute": (LEAVES, [top(), _entry(str(outside / "escaped"), data=b"x")]),
        "through archive symlink": (
            THROUGH_LINK,
            [top(), _entry("./etc", sym, link=str(outside)), _entry("./etc/escaped", data=b"x")],
        ),
        "through relative symlink": (
            THROUGH_LINK,
            [top(), _entry("./up", sym, link=up + str(outside)), _entry("./up/escaped", data=b"x")],
        ),
        # The same name again: tarfile's open(..., "wb") and chmod follow the link just made.
        "symlink then file": (
            TWICE,
            [top(), _entry("./victim", sym, link=victim), _entry("./victim", data=b"owned!!!", mode=0o4755)],
        ),
        "relative symlink then file": (
            TWICE,
            [
                top(),
                _entry("./victim", sym, link=up + victim),
                _entry("./victim", data=b"owned!", mode=0o4755),
            ],
        ),
        "symlink then directory": (
            TWICE,
            [top(), _entry("./vdir", sym, link=vdir), _entry("./vdir/", d, mode=0o777)],
        ),
        "symlink then file under it": (
            THROUGH_LINK,
            [top(), _entry("./vdir", sym, link=vdir), _entry("./vdir/planted", data=b"x", mode=0o4755)],
        ),
        "symlink chain": (
            THROUGH_LINK,
            [
                top(),
                _entry("./b", sym, link=str(outside)),
                _entry("./a", sym, link="b"),
                _entry("./a/escaped", data=b"x"),
            ],
        ),
        "symlink chain then file": (
            TWICE,
            [top(), _entry("./b", sym, link=victim), _entry("./a", sym, link="b"), _entry("./a", data=b"x")],
        ),
        "directory then symlink of the same name": (
            TWICE,
            [
                top(),
                _entry("./etc/", d),
                _entry("./etc", sym, link=str(outside)),
                _entry("./etc/escaped", data=b"x"),
            ],
        ),
        "symlink as the top": (
            "is not a directory",
            [_entry(".", sym, link=str(outside)), _entry("./escaped", data=b"x")],
        ),
        "hard link to outside": (LEAVES, [top(), _entry("./shadow", lnk, link="../../victim")]),
        "hard link to an absolute path": (LEAVES, [top(), _entry("./shadow", lnk, link=victim)]),
        "hard link via symlink": (
            HARD_LINK,
            [top(), _entry("./victim", sym, link=victim), _entry("./shadow", lnk, link="./victim")],
        ),
        "hard link to a directory": (
            HARD_LINK,
            [top(), _entry("./etc/", d), _entry("./etc2", lnk, link="./etc")],
        ),
        "hard link before its target": (
            HARD_LINK,
            [top(), _entry("./shadow", lnk, link="./later"), _entry("./later", data=b"x")],
        ),
        "file twice": (TWICE, [top(), _entry("./f", data=b"a"), _entry("./f", data=b"b")]),
        "block device": ("device node", [top(), _entry("./dev/sda", tarfile.BLKTYPE)]),
        "character device": ("device node", [top(), _entry("./dev/mem", tarfile.CHRTYPE)]),
        "fifo": ("a FIFO", [top(), _entry("./run/initctl", tarfile.FIFOTYPE)]),
    }


def _outside(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    (outside / "vdir").mkdir(parents=True)
    (outside / "vdir").chmod(0o755)
    (outside / "victim").write_text("precious")
    (outside / "victim").chmod(0o644)
    return outside


def _assert_untouched(outside: Path) -> None:
    assert sorted(p.name for p in outside.iterdir()) == ["vdir", "victim"]
    assert (outside / "victim").read_text() == "precious"
    assert (outside / "victim").stat().st_mode & 0o7777 == 0o644
    assert (outside / "vdir").stat().st_mode & 0o7777 == 0o755
    assert list((outside / "vdir").iterdir()) == []


@pytest.mark.parametrize("case", list(_escape_cases(Path("/x"))))
def test_rootfs_escapes_are_refused(tmp_path: Path, store: BoxStore, case: str) -> None:
    outside = _outside(tmp_path)
    reason, members = _escape_cases(outside)[case]
    archive, digest = archive_from(tmp_path, members)
    with pytest.raises(BoxError, match=f"^rootfs archive.*{reason}"):
        add_box(store, "web", str(archive), digest)
    assert_nothing_stored(store)
    _assert_untouched(outside)
    assert not (tmp_path / "escaped").exists()


def _unpack(tmp_path: Path, members: list[Member]) -> Path:
    tarball, dest = tmp_path / "rootfs.tar.zst", tmp_path / "rootfs"
    write_rootfs_tar(tarball, members)
    extract_rootfs(tarball, dest)
    return dest


def test_rootfs_keeps_owners_modes_links_and_times_but_its_top_is_private(tmp_path: Path) -> None:
    dated = _entry("./etc/issue", data=b"Debian\n")
    dated[0].mtime = 1_600_000_000
    owned = _entry("./home/u/notes", data=b"n", mode=0o600)
    owned[0].uid = owned[0].gid = 1000
    root = _unpack(
        tmp_path,
        [
            _entry("./", tarfile.DIRTYPE, mode=0o755),
            owned,  # before its parents: they are made on the way
            _entry("./home/", tarfile.DIRTYPE, mode=0o755),
            _entry("./proc/", tarfile.DIRTYPE, mode=0o555),
            _entry("./proc/.keep", data=b""),  # inside a read-only directory
            _entry("./var/mail/", tarfile.DIRTYPE, mode=0o2775),
            _entry("./var/mail/", tarfile.DIRTYPE, mode=0o2775),  # a directory may repeat
            _entry("./tmp/", tarfile.DIRTYPE, mode=0o1777),
            _entry("./etc/", tarfile.DIRTYPE, mode=0o755),
            dated,
            _entry("./etc/dangling", tarfile.SYMTYPE, link="/nonexistent/on/this/host"),
            _entry("./usr/bin/passwd", data=b"#!/bin/true\n", mode=0o4755),
            _entry("./usr/bin/wall", tarfile.LNKTYPE, link="usr/bin/passwd"),
        ],
    )
    assert root.stat().st_mode & 0o7777 == 0o700  # not the archive's 0755: setuid files inside
    assert root.stat().st_uid == 0
    assert (root / "home/u/notes").stat().st_uid == 1000
    assert (root / "home/u").stat().st_mode & 0o7777 == 0o755
    assert (root / "proc").stat().st_mode & 0o7777 == 0o555
    assert (root / "proc/.keep").is_file()
    assert (root / "var/mail").stat().st_mode & 0o7777 == 0o2775
    assert (root / "tmp").stat().st_mode & 0o7777 == 0o1777
    assert (root / "etc/issue").stat().st_mtime == 1_600_000_000
    assert (root / "etc/dangling").readlink() == Path("/nonexistent/on/this/host")
    assert (root / "usr/bin/passwd").stat().st_mode & 0o7777 == 0o4755
    assert (root / "usr/bin/wall").samefile(root / "usr/bin/passwd")


def test_a_rootfs_is_never_unpacked_into_an_existing_directory_or_link(tmp_path: Path) -> None:
    outside = _outside(tmp_path)
    tarball = tmp_path / "rootfs.tar.zst"
    write_rootfs_tar(tarball, [_entry("./"), _entry("./victim", data=b"owned!!!")])
    (tmp_path / "rootfs").symlink_to(outside)
    with pytest.raises(BoxError, match="already exists"):
        extract_rootfs(tarball, tmp_path / "rootfs")
    _assert_untouched(outside)


def test_existing_box_is_kept_unless_forced(tmp_path: Path, store: BoxStore) -> None:
    archive, digest = archive_from(tmp_path, normal_rootfs())
    first = add_box(store, "web", str(archive), digest)
    with pytest.raises(BoxError, match="already in the store"):
        add_box(store, "web", str(archive), digest)
    assert add_box(store, "web", str(archive), digest, force=True).sha256 == first.sha256


def test_plain_qcow2_becomes_a_vm_only_box(tmp_path: Path, store: BoxStore) -> None:
    image = tmp_path / "cloud.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "16M"], check=True)
    digest = hashlib.sha256(image.read_bytes()).hexdigest()
    box = add_box(store, "cloud", str(image), digest)
    assert box.kinds == ["vm"]
    assert box.rootfs is None and box.kernel is None and box.initrd is None
    assert box.disk.is_file()


def test_qcow2_with_backing_file_is_refused(tmp_path: Path, store: BoxStore) -> None:
    image = tmp_path / "overlay.qcow2"
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", "/etc/hostname", str(image), "16M"],
        check=True,
    )
    digest = hashlib.sha256(image.read_bytes()).hexdigest()
    with pytest.raises(BoxError, match="refers to another file"):
        add_box(store, "cloud", str(image), digest)
    assert_nothing_stored(store, "cloud")
