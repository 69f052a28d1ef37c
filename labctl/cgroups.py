"""CPU and memory limits for containers, on whichever cgroup layout the host has.

Hosts mount cgroups one of three ways: v1 controllers (one hierarchy per controller), pure v2
(one unified hierarchy), or hybrid (v1 controllers plus an empty v2 tree, like this project's CI
host). Only the controllers matter for limits, so hybrid counts as v1. labctl never remounts the
host's cgroups; it only asks liblxc and runc to create a child group with the right values.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Iterator
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
CPU_PERIOD_US = 100_000


class Layout(enum.StrEnum):
    V1 = "v1"
    V2 = "v2"


def layout(root: Path = CGROUP_ROOT) -> Layout:
    """v2 when the unified hierarchy is mounted at the root and holds the controllers."""
    return Layout.V2 if (root / "cgroup.controllers").exists() else Layout.V1


def host_cpus() -> int:
    return len(os.sched_getaffinity(0)) or 1


def cpuset(cpus: int, available: int | None = None) -> str:
    """The first `cpus` CPUs, capped at what the host has ("0-1" for 2 of 2)."""
    count = max(1, min(cpus, available or host_cpus()))
    return "0" if count == 1 else f"0-{count - 1}"


def lxc_limits(cpus: int, memory: int, kind: Layout | None = None) -> list[tuple[str, str]]:
    """lxc.cgroup*.* keys and values: a cpuset (so nproc inside shows the limit) and memory."""
    cpu_list = cpuset(cpus)
    if (kind or layout()) is Layout.V2:
        return [
            ("lxc.cgroup2.memory.max", str(memory)),
            ("lxc.cgroup2.cpuset.cpus", cpu_list),
            ("lxc.cgroup2.cpu.max", f"{cpus * CPU_PERIOD_US} {CPU_PERIOD_US}"),
        ]
    return [
        ("lxc.cgroup.memory.limit_in_bytes", str(memory)),
        ("lxc.cgroup.cpuset.cpus", cpu_list),
    ]


def oci_resources(cpus: int, memory: int) -> dict[str, object]:
    """linux.resources of an OCI config; runc writes it to v1 or v2 files itself."""
    return {
        "devices": [{"allow": False, "access": "rwm"}],
        "memory": {"limit": memory},
        "cpu": {"cpus": cpuset(cpus), "quota": cpus * CPU_PERIOD_US, "period": CPU_PERIOD_US},
    }


def find_groups(name: str, root: Path = CGROUP_ROOT, depth: int = 4) -> list[Path]:
    """Every cgroup directory whose name contains `name` (what a destroy must leave none of)."""
    return sorted(path for path in _walk(root, depth) if name in path.name)


def _walk(directory: Path, depth: int) -> Iterator[Path]:
    if depth < 0:
        return
    try:
        children = [entry for entry in os.scandir(directory) if entry.is_dir(follow_symlinks=False)]
    except OSError:
        return
    for child in children:
        path = Path(child.path)
        yield path
        yield from _walk(path, depth - 1)
