"""The box store: one directory per box, built or imported elsewhere and renamed into place.

    STORE/
    ├── NAME/                 a complete box; exists only once everything in it is verified
    │   ├── box.json          name, version, checksums of every artefact, kernel cmdline...
    │   ├── rootfs/           containers' OverlayFS lower dir (absent for VM-only boxes)
    │   ├── rootfs-shifted-U-G/  the same, owners moved up by U:G, for unprivileged LXC machines
    │   ├── rootfs.tar.zst    the same tree as one file, for checksums and export
    │   ├── disk.qcow2        the same tree as an ext4 disk labelled for root=LABEL=
    │   ├── vmlinuz           kernel and initrd for direct kernel boot
    │   └── initrd.img
    ├── .staging/             builds and imports in progress (same file system, so rename works)
    ├── .locks/NAME.lock      flock: one build, import or removal of a box at a time
    ├── .locks/NAME.shift.lock  flock: one shifted copy made at a time (the others wait for it)
    └── .users/NAME/LAB.json  labs that use a box, so it is not removed under them

Everything outside rootfs/ and rootfs-shifted-*/ is world-readable (0755/0644): QEMU runs as
libvirt-qemu and reads disk.qcow2 (as a backing file), vmlinuz and initrd.img directly. rootfs/
is 0700 (rootfs-shifted-*/ too, owned by container root): they hold the box's setuid programs,
and a box may come from anyone, so no other host user may reach them (containers see them
through an overlay that root or liblxc mounts, never through this path).
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import hashlib
import json
import os
import re
import stat
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labctl import paths
from labctl.box.recipe import NAME_RE, recipe_names, validate_name
from labctl.errors import BoxError

META = "box.json"
ROOTFS_TAR = "rootfs.tar.zst"
DISK = "disk.qcow2"
KERNEL = "vmlinuz"
INITRD = "initrd.img"
ARTEFACTS = (ROOTFS_TAR, DISK, KERNEL, INITRD)
META_FORMAT = 1
SHIFTED_PREFIX = "rootfs-shifted-"


@dataclass(frozen=True)
class Box:
    """A verified box in the store. Paths are absolute; artefacts a box lacks are None."""

    name: str
    path: Path
    meta: dict[str, Any]
    sha256: str

    @property
    def version(self) -> str:
        return str(self.meta.get("version", "unknown"))

    @property
    def rootfs(self) -> Path | None:
        return self.path / "rootfs" if ROOTFS_TAR in self.artefacts else None

    @property
    def disk(self) -> Path:
        return self.path / DISK

    @property
    def kernel(self) -> Path | None:
        return self.path / KERNEL if KERNEL in self.artefacts else None

    @property
    def initrd(self) -> Path | None:
        return self.path / INITRD if INITRD in self.artefacts else None

    @property
    def cmdline(self) -> str:
        return str(self.meta.get("cmdline", ""))

    @property
    def artefacts(self) -> dict[str, Any]:
        return dict(self.meta.get("artefacts", {}))

    @property
    def kinds(self) -> list[str]:
        """Machine kinds this box serves: vm with a disk, lxc and ns with a root file system."""
        kinds = ["vm"] if DISK in self.artefacts else []
        return kinds + (["lxc", "ns"] if self.rootfs is not None else [])

    @property
    def shifted(self) -> list[Path]:
        """Id-shifted copies of rootfs/ for unprivileged containers (labctl.box.shift)."""
        return sorted(p for p in self.path.glob(f"{SHIFTED_PREFIX}*") if p.is_dir() and not p.is_symlink())

    @property
    def size(self) -> int:
        """Bytes on disk: the artefacts, the unpacked root file system and its id-shifted copies."""
        own = sum(int(a["size"]) for a in self.artefacts.values()) + int(self.meta.get("rootfs_bytes", 0))
        return own + int(self.meta.get("rootfs_bytes", 0)) * len(self.shifted)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class BoxStore:
    def __init__(self, path: Path | None = None) -> None:
        self.path = (path or paths.box_store()).absolute()

    # -- reading -------------------------------------------------------------------------------

    def has(self, name: str) -> bool:
        return (self.path / validate_name(name) / META).is_file()

    def get(self, name: str) -> Box:
        box_dir = self.path / validate_name(name)
        meta_path = box_dir / META
        if not meta_path.is_file():
            raise BoxError(f"box {name} is not in the store", hint=f"labctl box build {name}")
        data = meta_path.read_bytes()
        try:
            meta = json.loads(data)
        except ValueError as exc:
            raise BoxError(
                f"{meta_path} is corrupt: {exc}", f"labctl box remove {name} and rebuild it"
            ) from exc
        box = Box(name=name, path=box_dir, meta=meta, sha256=hashlib.sha256(data).hexdigest())
        if box.rootfs is not None and os.geteuid() == 0:
            _seal(box.rootfs)  # boxes installed by an older labctl left it 0755
        return box

    def list(self) -> list[Box]:
        if not self.path.is_dir():
            return []
        names = sorted(
            p.name for p in self.path.iterdir() if NAME_RE.fullmatch(p.name) and (p / META).is_file()
        )
        return [self.get(name) for name in names]

    def recipe_names(self) -> builtins.list[str]:
        return recipe_names()

    # -- users ---------------------------------------------------------------------------------

    def register_user(self, name: str, lab_id: str, lab_dir: Path) -> None:
        """Record that the lab in lab_dir uses box name (its machines' disks or lower dirs)."""
        entry = self._users_dir(name) / f"{_check_lab_id(lab_id)}.json"
        entry.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(entry, json.dumps({"lab_id": lab_id, "lab_dir": str(Path(lab_dir).absolute())}))

    def unregister_user(self, name: str, lab_id: str) -> None:
        (self._users_dir(name) / f"{_check_lab_id(lab_id)}.json").unlink(missing_ok=True)

    def users(self, name: str) -> builtins.list[Path]:
        """Lab directories using the box; entries whose lab has gone (no .labctl/) are dropped."""
        found: builtins.list[Path] = []
        users_dir = self._users_dir(name)
        for entry in sorted(users_dir.glob("*.json")) if users_dir.is_dir() else []:
            with contextlib.suppress(OSError, ValueError, KeyError):
                lab_dir = Path(json.loads(entry.read_text())["lab_dir"])
                if (lab_dir / paths.STATE_DIR_NAME).is_dir():
                    found.append(lab_dir)
                    continue
            entry.unlink(missing_ok=True)
        return found

    def _users_dir(self, name: str) -> Path:
        return self.path / ".users" / validate_name(name)

    def refuse_if_used(self, name: str, doing: str) -> None:
        users = self.users(name)
        if users:
            labs = ", ".join(str(u) for u in users)
            raise BoxError(
                f"cannot {doing} box {name}: used by {labs}",
                "destroy those labs first, or pass --force to do it anyway",
            )

    # -- changing ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """Hold the box's lock: a second build, import or removal of it fails at once."""
        lock_path = self.path / ".locks" / f"{validate_name(name)}.lock"
        _mkdirs(lock_path.parent)
        with open(lock_path, "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise BoxError(
                    f"box {name} is being built, imported or removed by another labctl",
                    "wait for it to finish",
                ) from exc
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def waiting_lock(self, name: str, purpose: str, timeout: float = 600.0) -> Iterator[None]:
        """Hold NAME.PURPOSE.lock, waiting for another holder (another up, or a thread of this one)
        to finish; flock locks belong to one open file, so threads exclude each other too."""
        lock_path = self.path / ".locks" / f"{validate_name(name)}.{purpose}.lock"
        _mkdirs(lock_path.parent)
        deadline = time.monotonic() + timeout
        with open(lock_path, "a") as handle:
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise BoxError(
                            f"box {name} is busy ({purpose}) for more than {timeout:g} s", "try again later"
                        ) from None
                    time.sleep(0.2)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def staging(self, name: str) -> Iterator[Path]:
        """A fresh directory for a box in the making; removed (mounts and all) unless installed.

        Call with the box's lock held: leftovers of a killed build of the same box are removed
        first.
        """
        from labctl.box.chroot import unmount_under

        root = self.path / ".staging"
        _mkdirs(root)
        for stale in root.glob(f"{name}.*"):
            _remove_tree(stale, root)
        stage = Path(tempfile.mkdtemp(prefix=f"{name}.", dir=root))
        try:
            yield stage
        finally:
            unmount_under(stage)
            _remove_tree(stage, root)

    def install(self, name: str, stage: Path) -> Box:
        """Move a complete staged box into place, replacing any older box of that name."""
        _publish_permissions(stage)
        target = self.path / validate_name(name)
        old = stage.parent / f"{name}.old-{os.getpid()}"
        if target.exists():
            target.rename(old)
        stage.rename(target)
        _remove_tree(old, self.path)
        # The staging context still removes its directory; give it an empty one.
        stage.mkdir()
        return self.get(name)

    def remove(self, name: str, force: bool = False) -> None:
        if not self.has(name):
            raise BoxError(f"box {name} is not in the store", "labctl box list shows the boxes there")
        with self.lock(name):
            if not force:
                self.refuse_if_used(name, "remove")
            doomed = self.path / ".staging" / f"{name}.removing-{os.getpid()}"
            _mkdirs(doomed.parent)
            (self.path / name).rename(doomed)  # gone from the store at once, even if rmtree fails
            _remove_tree(doomed, self.path)
            paths.remove_tree(self._users_dir(name), self.path, ignore_errors=True)


def _check_lab_id(lab_id: str) -> str:
    # A lab ID becomes a file name: no separators, no leading dot.
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", lab_id):
        raise BoxError(f"invalid lab id {lab_id!r} for the box store")
    return lab_id


def _mkdirs(path: Path) -> None:
    # 0755 whatever the umask: libvirt-qemu must traverse the store to reach disks and kernels.
    missing = [p for p in (path, *path.parents) if not p.exists()]
    path.mkdir(parents=True, exist_ok=True)
    for level in missing:
        level.chmod(0o755)


def _publish_permissions(stage: Path) -> None:
    """0755 for the box directory, 0644 for its files, 0700 for rootfs/ (its tree keeps its own)."""
    stage.chmod(0o755)
    for entry in stage.iterdir():
        if entry.is_file() and not entry.is_symlink():
            entry.chmod(0o644)
    _seal(stage / "rootfs")


def _seal(rootfs: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        info = rootfs.lstat()
        if stat.S_ISDIR(info.st_mode) and stat.S_IMODE(info.st_mode) != 0o700:
            rootfs.chmod(0o700)


def _remove_tree(path: Path, root: Path) -> None:
    """Unmount what a build left mounted under path, then remove it (only inside root)."""
    from labctl.box.chroot import unmount_under

    if not path.exists() and not path.is_symlink():
        return
    paths.removable(path, root)
    unmount_under(path)
    paths.remove_tree(path, root)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text + "\n")
    tmp.chmod(0o644)
    tmp.replace(path)
