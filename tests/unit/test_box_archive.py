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


def _escape_cases(outside: Path) -> dict[str, list[Member]]:
    return {
        "dotdot": [_entry("./"), _entry("./../escaped", data=b"x")],
        "absolute": [_entry("./"), _entry(str(outside / "escaped"), data=b"x")],
        "through archive symlink": [
            _entry("./"),
            _entry("./etc", tarfile.SYMTYPE, link=str(outside)),
            _entry("./etc/escaped", data=b"x"),
        ],
        "through relative symlink": [
            _entry("./"),
            _entry("./up", tarfile.SYMTYPE, link="../../../../../../../../.." + str(outside)),
            _entry("./up/escaped", data=b"x"),
        ],
        "hard link to outside": [_entry("./"), _entry("./shadow", tarfile.LNKTYPE, link="../../victim")],
        "hard link via symlink": [
            _entry("./"),
            _entry("./victim", tarfile.SYMTYPE, link=str(outside / "victim")),
            _entry("./shadow", tarfile.LNKTYPE, link="./victim"),
        ],
        "device node": [_entry("./"), _entry("./dev/sda", tarfile.BLKTYPE)],
    }


@pytest.mark.parametrize("case", list(_escape_cases(Path("/x"))))
def test_rootfs_escapes_are_refused(tmp_path: Path, store: BoxStore, case: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_text("precious")
    archive, digest = archive_from(tmp_path, _escape_cases(outside)[case])
    with pytest.raises(BoxError, match="rootfs archive"):
        add_box(store, "web", str(archive), digest)
    assert_nothing_stored(store)
    assert sorted(p.name for p in outside.iterdir()) == ["victim"]
    assert (outside / "victim").read_text() == "precious"
    assert not (tmp_path / "escaped").exists()


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
