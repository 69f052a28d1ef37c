"""From one built root file system to every artefact of a box, and the box.json that lists them.

disk.qcow2 is an ext4 file system made straight from the tree with `mkfs.ext4 -d` (no loop
device, no mount) and converted to qcow2 without compression: compressed clusters would be
inflated on every read, and under TCG the guest is slow enough already. Unused space costs
nothing in qcow2, so the disk has room to grow (cloud-init's resize_rootfs fills any extra).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from labctl import console, run
from labctl.box.recipe import Recipe
from labctl.box.store import DISK, INITRD, KERNEL, META, META_FORMAT, ROOTFS_TAR, file_sha256
from labctl.errors import BoxError


def make_all(stage: Path, recipe: Recipe, packages: dict[str, str], *, build_seconds: float) -> None:
    root = stage / "rootfs"
    copy_kernel(root, stage)
    make_disk(root, stage / DISK, recipe)
    make_tar(root, stage / ROOTFS_TAR)
    with console.step("writing box.json"):
        meta = box_meta(recipe, stage, packages, build_seconds)
        write_meta(stage, meta)


def copy_kernel(root: Path, stage: Path) -> None:
    """vmlinuz and initrd.img for direct kernel boot, taken from the newest kernel in /boot."""
    kernels = sorted((root / "boot").glob("vmlinuz-*"))
    if not kernels:
        raise BoxError("the box has no kernel in /boot", "add linux-image-amd64 to the recipe's packages")
    release = kernels[-1].name.removeprefix("vmlinuz-")
    initrd = root / "boot" / f"initrd.img-{release}"
    if not initrd.is_file():
        raise BoxError(f"the box has no initrd for kernel {release}", "add initramfs-tools to the packages")
    shutil.copyfile(kernels[-1], stage / KERNEL)
    shutil.copyfile(initrd, stage / INITRD)


def make_disk(root: Path, disk: Path, recipe: Recipe) -> None:
    raw = disk.with_suffix(".raw")
    with console.step(f"making {DISK} ({recipe.disk_size_mib} MiB ext4, label {recipe.root_label})"):
        try:
            run.run(
                [
                    "mkfs.ext4",
                    "-q",
                    "-F",
                    "-L",
                    recipe.root_label,
                    "-d",
                    root,
                    raw,
                    f"{recipe.disk_size_mib}M",
                ]
            )
            run.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, disk])
        finally:
            raw.unlink(missing_ok=True)


def make_tar(root: Path, tarball: Path) -> None:
    # POSIX format keeps xattrs (file capabilities); numeric owners because the host's user
    # names mean nothing inside the box; sorted names make the archive reproducible.
    with console.step(f"making {ROOTFS_TAR}"):
        run.run([
            "tar", "--create", "--file", tarball, "--zstd", "--format=posix", "--numeric-owner",
            "--xattrs", "--xattrs-include=*", "--sort=name", "--directory", root, ".",
        ])  # fmt: skip


def box_meta(recipe: Recipe, stage: Path, packages: dict[str, str], build_seconds: float) -> dict[str, Any]:
    now = time.gmtime()
    return {
        "format": META_FORMAT,
        "name": recipe.name,
        "version": time.strftime("%Y%m%d.%H%M%S", now) + "-" + recipe.sha256[:8],
        "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", now),
        "build_seconds": round(build_seconds, 1),
        "source": "build",
        "description": recipe.description,
        "distribution": recipe.distribution,
        "suite": recipe.suite,
        "recipe_sha256": recipe.sha256,
        "root_label": recipe.root_label,
        "cmdline": recipe.kernel_cmdline,
        "first_boot": recipe.first_boot,
        "artefacts": describe(stage, (ROOTFS_TAR, DISK, KERNEL, INITRD)),
        "rootfs_bytes": tree_bytes(stage / "rootfs"),
        "packages": dict(sorted(packages.items())),
    }


def describe(stage: Path, names: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    return {n: {"sha256": file_sha256(stage / n), "size": (stage / n).stat().st_size} for n in names}


def tree_bytes(root: Path) -> int:
    """Bytes allocated by a tree (hard links once), like `du -s --bytes` but on blocks."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for directory, _dirs, files in os.walk(root):
        for name in files:
            st = os.lstat(Path(directory, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


def write_meta(stage: Path, meta: dict[str, Any]) -> None:
    (stage / META).write_text(json.dumps(meta, indent=2) + "\n")
