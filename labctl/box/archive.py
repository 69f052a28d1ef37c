"""`labctl box export` and `labctl box add`: a box as one archive file, and back.

An exported box is an uncompressed tar of flat regular files: box.json first, then the
artefacts it lists (rootfs.tar.zst, disk.qcow2, vmlinuz, initrd.img). The outer archive needs no
links and no directories, so any member that is not a known flat file name is refused outright;
the root file system, which does hold links, travels inside rootfs.tar.zst and is unpacked by
labctl.box.unpack under its own rules.

Import order, so that a bad file stores nothing: copy and check the user's SHA-256; read the
outer archive; check every artefact's size and SHA-256 against box.json; check the disk stands
alone; unpack the root file system; only then rename the staged box into the store.
"""

from __future__ import annotations

import json
import os
import tarfile
import time
from pathlib import Path
from typing import Any

from labctl import console
from labctl.box.fetch import check_qcow2, check_sha256, fetch_verified, is_qcow2
from labctl.box.recipe import validate_name
from labctl.box.store import ARTEFACTS, DISK, META, META_FORMAT, ROOTFS_TAR, Box, BoxStore, file_sha256
from labctl.box.unpack import extract_rootfs
from labctl.errors import BoxError

ALLOWED = (META, *ARTEFACTS)


def export_box(box: Box, target: Path) -> str:
    """Write box to target (atomically) and return the archive's SHA-256 for `box add`."""
    partial = target.with_name(f".{target.name}.part")
    with console.step(f"exporting box {box.name} to {target}"):
        try:
            with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
                for name in (META, *box.artefacts):
                    tar.add(box.path / name, arcname=name, recursive=False, filter=_normalise)
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)
    return file_sha256(target)


def _normalise(member: tarfile.TarInfo) -> tarfile.TarInfo:
    member.uid = member.gid = 0
    member.uname = member.gname = "root"
    member.mode = 0o644
    return member


def add_box(store: BoxStore, name: str, source: str, sha256: str, *, force: bool = False) -> Box:
    """Import an exported box or a qcow2 cloud image (a VM-only box) as box name."""
    validate_name(name)
    expected = check_sha256(sha256)
    with store.lock(name):
        if store.has(name) and not force:
            raise BoxError(f"box {name} is already in the store", "pass --force to replace it")
        if store.has(name):
            store.refuse_if_used(name, "replace")
        with store.staging(name) as stage:
            download = stage / "download"
            fetch_verified(source, download, expected)
            if is_qcow2(download):
                _stage_image(stage, download, name, source, expected)
            else:
                _stage_archive(stage, download, name)
            download.unlink(missing_ok=True)
            return store.install(name, stage)


def _stage_image(stage: Path, image: Path, name: str, source: str, digest: str) -> None:
    check_qcow2(image)
    image.rename(stage / DISK)
    now = time.gmtime()
    meta: dict[str, Any] = {
        "format": META_FORMAT,
        "name": name,
        "version": f"image-{digest[:12]}",
        "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", now),
        "source": source,
        "cmdline": "",  # the image boots with its own boot loader
        "artefacts": {DISK: {"sha256": digest, "size": (stage / DISK).stat().st_size}},
    }
    (stage / META).write_text(json.dumps(meta, indent=2) + "\n")


def _stage_archive(stage: Path, archive: Path, name: str) -> None:
    with console.step("checking the archive"):
        _extract_members(archive, stage)
        meta = _read_meta(stage)
        _verify_artefacts(stage, meta)
        if DISK in meta["artefacts"]:
            check_qcow2(stage / DISK)
    if ROOTFS_TAR in meta["artefacts"]:
        with console.step("unpacking the root file system"):
            extract_rootfs(stage / ROOTFS_TAR, stage / "rootfs")
    if meta.get("name") != name:
        # Renaming changes box.json and so the box's checksum; otherwise it is kept byte for byte.
        meta["name"] = name
        (stage / META).write_text(json.dumps(meta, indent=2) + "\n")


def _extract_members(archive: Path, stage: Path) -> None:
    seen: set[str] = set()
    try:
        with tarfile.open(archive, "r:") as tar:
            for member in tar:
                _check_member(member, seen)
                _copy_member(tar, member, stage / member.name)
    except tarfile.TarError as exc:
        raise BoxError(f"not a box archive, or a truncated one: {exc}", "export the box again") from exc
    if META not in seen:
        raise BoxError(f"the archive has no {META}", "is this a file written by labctl box export?")


def _check_member(member: tarfile.TarInfo, seen: set[str]) -> None:
    if member.name not in ALLOWED:
        raise BoxError(
            f"unexpected archive member {member.name!r}",
            f"a box archive holds only {', '.join(ALLOWED)} at its top level",
        )
    if not member.isreg():
        raise BoxError(f"archive member {member.name} is a link or special file, not a regular file")
    if member.name in seen:
        raise BoxError(f"archive member {member.name} appears twice")
    seen.add(member.name)


def _copy_member(tar: tarfile.TarFile, member: tarfile.TarInfo, dest: Path) -> None:
    source = tar.extractfile(member)
    if source is None:  # only for non-regular members, refused above
        raise BoxError(f"cannot read archive member {member.name}")
    copied = 0
    # A new file only (names are unique and the stage is fresh): never through whatever is there.
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with source, os.fdopen(fd, "wb") as out:
        while chunk := source.read(1 << 20):
            out.write(chunk)
            copied += len(chunk)
    if copied != member.size:
        raise BoxError(f"archive member {member.name} is truncated ({copied} of {member.size} bytes)")


def _read_meta(stage: Path) -> dict[str, Any]:
    try:
        meta = json.loads((stage / META).read_bytes())
    except ValueError as exc:
        raise BoxError(f"{META} in the archive is not valid JSON: {exc}") from exc
    if not isinstance(meta, dict) or not isinstance(meta.get("artefacts"), dict):
        raise BoxError(f"{META} in the archive does not describe a box (no artefacts)")
    if not isinstance(meta.get("format"), int) or meta["format"] > META_FORMAT:
        raise BoxError(f"{META} has format {meta.get('format')!r}", "upgrade labctl to import this box")
    return meta


def _verify_artefacts(stage: Path, meta: dict[str, Any]) -> None:
    listed = meta["artefacts"]
    present = {p.name for p in stage.iterdir()} - {META, "download"}
    for extra in sorted(present - set(listed)):
        raise BoxError(f"archive member {extra} is not listed in {META}")
    for name, info in listed.items():
        if name not in ARTEFACTS:
            raise BoxError(f"{META} lists an unknown artefact {name!r}")
        path = stage / name
        if not path.is_file():
            raise BoxError(f"the archive lacks {name}, which {META} lists", "the archive may be truncated")
        if not isinstance(info, dict) or path.stat().st_size != info.get("size"):
            raise BoxError(f"{name} has the wrong size for {META}", "the archive is damaged or was altered")
        if file_sha256(path) != info.get("sha256"):
            raise BoxError(f"{name} does not match its checksum in {META}", "the archive was altered")
