"""A VM's disk: a qcow2 overlay on the box's disk, so the box is shared and never written."""

from __future__ import annotations

import json
from pathlib import Path

from labctl.errors import DriverError
from labctl.run import run


def virtual_size(image: Path) -> int:
    info = json.loads(run(["qemu-img", "info", "--output=json", image]).stdout)
    return int(info["virtual-size"])


def overlay_size(backing: Path, size: int | None) -> int:
    """The overlay's virtual size: `disk:` from the labfile, at least the box's disk."""
    box_size = virtual_size(backing)
    if size is not None and size < box_size:
        raise DriverError(
            f"disk: {size // 1024**2} MiB is smaller than the box's disk ({box_size // 1024**2} MiB)",
            f"set disk: to at least {-(-box_size // 1024**3)}G in the labfile",
        )
    return size or box_size


def create_overlay(backing: Path, overlay: Path, size: int | None) -> None:
    """overlay (qcow2) backed by backing, with virtual size `size` (at least the box's)."""
    virtual = overlay_size(backing, size)
    argv: list[str | Path] = [
        "qemu-img",
        "create",
        "-q",
        "-f",
        "qcow2",
        "-F",
        "qcow2",
        "-b",
        backing,
        overlay,
    ]
    run([*argv, str(virtual)])
    overlay.chmod(0o600)  # libvirt hands it to the qemu user while the VM runs
