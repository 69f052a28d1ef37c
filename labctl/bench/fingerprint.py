"""What a result depends on: host kernel, CPU, tool versions, accelerator and box.

Two results files are comparable only when their fingerprints say so; the report prints it.
A missing tool is recorded as null, never guessed.
"""

from __future__ import annotations

import os
import platform
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from labctl import host
from labctl.errors import LabctlError
from labctl.run import run, which

VERSION_COMMANDS = {
    "qemu": ["qemu-system-x86_64", "--version"],
    "libvirt": ["libvirtd", "--version"],
    "lxc": ["lxc-start", "--version"],
    "runc": ["runc", "--version"],
    "sysbench": ["sysbench", "--version"],
    "fio": ["fio", "--version"],
    "iperf3": ["iperf3", "--version"],
    "stress-ng": ["stress-ng", "--version"],
}


def host_fingerprint() -> dict[str, Any]:
    kvm, why = host.kvm_usable()
    return {
        "hostname": platform.node(),
        "kernel": os.uname().release,
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_bytes": _mem_total(),
        "kvm_usable": kvm,
        "kvm_detail": why,
        "versions": {name: tool_version(argv) for name, argv in VERSION_COMMANDS.items()},
    }


def cpu_model(cpuinfo: str | None = None) -> str | None:
    text = cpuinfo if cpuinfo is not None else _read("/proc/cpuinfo")
    for line in text.splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return None


def tool_version(argv: Sequence[str]) -> str | None:
    """The first version-looking token of the tool's --version output, or None."""
    if which(argv[0]) is None:
        return None
    try:
        result = run(argv, check=False, timeout=20)
    except LabctlError:
        return None
    match = re.search(r"\d+\.\d+(?:\.\d+)?(?:[-+~][\w.]+)?", result.stdout + result.stderr)
    return match.group(0) if match else None


def box_fingerprint(name: str) -> dict[str, Any]:
    """Name, version and checksum of a box from the store; nulls when the store lacks it."""
    try:
        from labctl.box import BoxStore

        box: Any = BoxStore().get(name)
    except (LabctlError, ImportError, AttributeError):
        return {"name": name, "version": None, "sha256": None}
    return {
        "name": name,
        "version": getattr(box, "version", None),
        "sha256": getattr(box, "sha256", None),
    }


def _mem_total() -> int | None:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return None


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""
