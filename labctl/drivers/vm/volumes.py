"""A VM's files on a remote libvirt host, as volumes of labctl's storage pool there.

On the local host a VM's overlay, seed and console log are files in the lab's data dir. A remote
libvirtd cannot see those, so labctl keeps a `dir` pool named `labctl` on that host and:
- uploads each box's disk, kernel and initrd once (volumes named after the box's checksum, kept
  for later labs; an upload counts only once its `.ok` marker volume exists);
- creates each VM's qcow2 overlay there, backed by the box's disk volume;
- uploads the VM's NoCloud seed, built here;
- points the serial log into the pool's directory.
Per-machine volumes are named `<lab id>.<machine>.<what>`: dots never occur in lab ids or machine
names, so a lab's volumes are found by prefix and nothing else matches.
"""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from labctl import console, templating
from labctl.drivers.vm.domain import BootFiles, GuestPaths
from labctl.libvirt_util import libvirt_errors

POOL_NAME = "labctl"
POOL_PATH = "/var/lib/libvirt/images/labctl"

_upload_lock = threading.Lock()  # one upload of a box at a time in this process


@dataclass(frozen=True)
class MachineVolumes:
    lab_id: str
    machine: str

    @property
    def prefix(self) -> str:
        return f"{self.lab_id}.{self.machine}."

    @property
    def disk(self) -> str:
        return f"{self.prefix}disk.qcow2"

    @property
    def seed(self) -> str:
        return f"{self.prefix}seed.iso"

    @property
    def console_log(self) -> str:
        return f"{self.prefix}console.log"


def ensure_pool(conn: Any) -> Any:
    """labctl's pool on conn's host, defined, built and running."""
    import libvirt

    with libvirt_errors(f"cannot set up the storage pool {POOL_NAME} on {conn.getURI()}"):
        try:
            pool = conn.storagePoolLookupByName(POOL_NAME)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_POOL:
                raise
            pool = conn.storagePoolDefineXML(
                templating.render("libvirt/pool.xml.j2", name=POOL_NAME, path=POOL_PATH)
            )
            pool.build(0)
        if not pool.isActive():
            pool.create(0)
        pool.refresh(0)
    return pool


def pool_path(pool: Any) -> PurePosixPath:
    path = ET.fromstring(pool.XMLDesc(0)).findtext("target/path")  # noqa: S314 - from libvirtd
    return PurePosixPath(path or POOL_PATH)


def box_files(conn: Any, pool: Any, box: Any, boot: BootFiles) -> BootFiles:
    """The box's disk, kernel and initrd on the remote host, uploaded there first if needed."""
    stem = f"box.{box.name}.{box.sha256[:16]}"
    with _upload_lock:
        disk = _uploaded(conn, pool, f"{stem}.disk.qcow2", boot.disk, "qcow2")
        kernel = _uploaded(conn, pool, f"{stem}.vmlinuz", boot.kernel, "raw")
        initrd = _uploaded(conn, pool, f"{stem}.initrd.img", boot.initrd, "raw")
    return BootFiles(Path(disk), Path(kernel), Path(initrd), boot.cmdline)


def _uploaded(conn: Any, pool: Any, name: str, source: Path, fmt: str) -> str:
    """The path of volume name holding source's bytes; uploads it unless a finished copy exists."""
    marker = f"{name}.ok"
    existing = _lookup(pool, name)
    if existing is not None and _lookup(pool, marker) is not None:
        return str(existing.path())
    if existing is not None:  # an upload that never finished
        with libvirt_errors(f"cannot remove the unfinished volume {name}"):
            existing.delete(0)
    size_mib = source.stat().st_size / 1024**2
    console.info(
        f"uploading {source.name} ({size_mib:.0f} MiB) to {conn.getURI()} as {name}, once per box version"
    )
    volume = upload(conn, pool, name, source, fmt)
    with libvirt_errors(f"cannot mark {name} as uploaded"):
        pool.createXML(_volume_xml(marker, 0, "raw"), 0)
    return str(volume.path())


def upload(conn: Any, pool: Any, name: str, source: Path, fmt: str) -> Any:
    """A new volume with source's bytes, streamed over the libvirt connection."""
    import libvirt

    size = source.stat().st_size
    with libvirt_errors(f"cannot create the volume {name} on {conn.getURI()}"):
        volume = pool.createXML(_volume_xml(name, size, fmt), 0)
    stream = conn.newStream(0)
    try:
        with source.open("rb") as data:
            volume.upload(stream, 0, size, 0)
            stream.sendAll(lambda _stream, nbytes, fh: fh.read(nbytes), data)
        stream.finish()
    except (libvirt.libvirtError, OSError) as exc:
        try:
            stream.abort()
            volume.delete(0)
        except libvirt.libvirtError:
            pass
        from labctl.errors import DriverError

        message = exc.get_error_message() if isinstance(exc, libvirt.libvirtError) else str(exc)
        raise DriverError(f"cannot upload {source} to {conn.getURI()}: {message}") from exc
    return volume


def download(conn: Any, pool: Any, name: str, dest: Path) -> bool:
    """Copy volume name (a file libvirt may only now see, like a console log) to dest."""
    import libvirt

    with libvirt_errors(f"cannot read {name} on {conn.getURI()}"):
        pool.refresh(0)
        volume = _lookup(pool, name)
        if volume is None:
            return False
        stream = conn.newStream(0)
        with dest.open("wb") as out:
            volume.download(stream, 0, 0, 0)
            try:
                stream.recvAll(lambda _stream, data, fh: fh.write(data), out)
                stream.finish()
            except libvirt.libvirtError:
                stream.abort()
                raise
    return True


def machine_paths(
    conn: Any, pool: Any, names: MachineVolumes, base: str, size: int, seed: Path
) -> GuestPaths:
    """Create the machine's overlay (backed by base) and upload its seed; their remote paths."""
    with libvirt_errors(f"cannot create the disk of vm {names.machine} on {conn.getURI()}"):
        overlay = pool.createXML(_volume_xml(names.disk, size, "qcow2", backing=base), 0)
    seed_volume = upload(conn, pool, names.seed, seed, "raw")
    return GuestPaths(
        overlay=str(overlay.path()),
        seed=str(seed_volume.path()),
        console_log=str(pool_path(pool) / names.console_log),
    )


def remove(pool: Any, prefix: str) -> None:
    """Delete every volume whose name starts with prefix (a machine's, or a whole lab's)."""
    with libvirt_errors(f"cannot remove the volumes {prefix}* of pool {POOL_NAME}"):
        pool.refresh(0)  # the console log is a file virtlogd made: make libvirt see it
        for volume in pool.listAllVolumes(0):
            if volume.name().startswith(prefix):
                volume.delete(0)


def existing_pool(conn: Any) -> Any | None:
    import libvirt

    try:
        pool = conn.storagePoolLookupByName(POOL_NAME)
    except libvirt.libvirtError:
        return None
    return pool if pool.isActive() else None


def _lookup(pool: Any, name: str) -> Any | None:
    import libvirt

    try:
        return pool.storageVolLookupByName(name)
    except libvirt.libvirtError:
        return None


def _volume_xml(name: str, capacity: int, fmt: str, backing: str | None = None) -> str:
    return templating.render(
        "libvirt/volume.xml.j2", name=name, capacity=capacity, format=fmt, backing=backing
    )


# -- box volumes no VM needs any more -------------------------------------------------------------


def prune_boxes(pool: Any) -> tuple[list[str], list[str]]:
    """Delete every uploaded box version that no volume of the pool is backed by.

    Returns (removed, kept) box stems (`box.<name>.<checksum>`). Every labctl VM on the host has
    an overlay in this pool backed by its box's disk, so a version nothing is backed by serves no
    VM. The `.ok` markers go first: a prune cut short leaves an unfinished upload, never a
    finished-looking partial one.
    """
    with libvirt_errors(f"cannot prune the box volumes of pool {POOL_NAME}"):
        pool.refresh(0)
        volumes = pool.listAllVolumes(0)
        used = {_backing_path(v) for v in volumes} - {None}
        stems: dict[str, list[Any]] = {}
        for volume in volumes:
            parts = volume.name().split(".")
            if parts[0] == "box" and len(parts) >= 4:
                stems.setdefault(".".join(parts[:3]), []).append(volume)
        removed, kept = [], []
        for stem, members in sorted(stems.items()):
            if any(v.path() in used for v in members):
                kept.append(stem)
                continue
            for volume in sorted(members, key=lambda v: not v.name().endswith(".ok")):
                volume.delete(0)
            removed.append(stem)
    return removed, kept


def _backing_path(volume: Any) -> str | None:
    return ET.fromstring(volume.XMLDesc(0)).findtext("backingStore/path")  # noqa: S314 - from libvirtd
