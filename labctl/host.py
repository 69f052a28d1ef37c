"""Named host probes: what this host can run, checked before `up` touches anything.

Each probe returns a Check: a status, what was found, and a hint when something is missing.
`labctl doctor` prints them all; drivers call the ones they depend on.
"""

from __future__ import annotations

import enum
import json
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from labctl import run as runner
from labctl.errors import LabctlError


class Status(enum.StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    hint: str | None = None


def cpu_virt_flag(cpuinfo: str | None = None) -> str | None:
    """'vmx' (Intel VT-x) or 'svm' (AMD-V) when the CPU offers hardware virtualization."""
    text = cpuinfo if cpuinfo is not None else _read("/proc/cpuinfo")
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = line.split(":", 1)[1].split()
            for flag in ("vmx", "svm"):
                if flag in flags:
                    return flag
    return None


def kvm_usable() -> tuple[bool, str]:
    """Whether KVM can run guests here, and why not when it cannot."""
    flag = cpu_virt_flag()
    if flag is None:
        return (
            False,
            "the CPU shows no vmx/svm flag (no hardware virtualization, or nested virtualization is off)",
        )
    if not Path("/dev/kvm").exists():
        return False, f"the CPU has {flag} but /dev/kvm is missing (load kvm_intel or kvm_amd)"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False, "/dev/kvm is not readable and writable by this user (add it to the kvm group)"
    return True, f"CPU flag {flag}, /dev/kvm usable"


def check_kvm() -> Check:
    usable, why = kvm_usable()
    if usable:
        return Check("kvm", Status.OK, why)
    return Check("kvm", Status.WARN, f"VMs will run under TCG (pure emulation, much slower): {why}")


def check_libvirt(uri: str) -> Check:
    try:
        import libvirt
    except ImportError:
        return Check("libvirt", Status.FAIL, "libvirt-python is not installed", "run scripts/setup-host")
    from labctl.libvirt_util import connect_hint

    try:
        conn = libvirt.open(uri)
    except libvirt.libvirtError as exc:
        return Check(
            "libvirt",
            Status.FAIL,
            f"cannot connect to {uri}: {exc.get_error_message()}",
            connect_hint(uri),
        )
    try:
        version = conn.getLibVersion()
        qemu = conn.getVersion()
    finally:
        conn.close()
    return Check("libvirt", Status.OK, f"{uri} reachable, libvirt {_version(version)}, QEMU {_version(qemu)}")


def _version(number: int) -> str:
    return f"{number // 1_000_000}.{number // 1000 % 1000}.{number % 1000}"


def check_program(name: str, program: str, version_argv: list[str]) -> Check:
    if runner.which(program) is None:
        error = runner.missing_program(program)
        return Check(name, Status.FAIL, error.message, error.hint)
    try:
        out = runner.run(version_argv, timeout=10).stdout.strip().splitlines()
    except LabctlError as exc:
        return Check(name, Status.FAIL, exc.message, exc.hint)
    version = out[0] if out else ""
    # Most tools name themselves in their version line; say the name once.
    detail = version if version.startswith(program.split("-")[0]) else f"{program} {version}".strip()
    return Check(name, Status.OK, detail)


def cgroup_layout() -> str:
    """'v2' (unified), 'hybrid' (v1 controllers + v2 mount) or 'v1'."""
    root = Path("/sys/fs/cgroup")
    if (root / "cgroup.controllers").exists():
        return "v2"
    if (root / "unified").is_dir():
        return "hybrid"
    return "v1"


def check_cgroups() -> Check:
    layout = cgroup_layout()
    detail = {
        "v2": "cgroup v2 (unified)",
        "hybrid": "hybrid: v1 controllers, v2 mounted at unified/",
        "v1": "cgroup v1",
    }[layout]
    if layout != "v2":
        missing = [c for c in ("memory", "cpu", "cpuset", "pids") if not Path("/sys/fs/cgroup", c).is_dir()]
        if missing:
            return Check("cgroups", Status.FAIL, f"{detail}; missing controllers: {', '.join(missing)}")
    return Check("cgroups", Status.OK, detail)


def check_overlayfs() -> Check:
    if "overlay" in _read("/proc/filesystems"):
        return Check("overlayfs", Status.OK, "overlay filesystem available")
    return Check(
        "overlayfs", Status.WARN, "no overlay filesystem: container roots will be copies", "modprobe overlay"
    )


def check_subids() -> Check:
    """Root's own subordinate ids: what unprivileged LXC machines and user namespaces map to."""
    from labctl import idmap

    try:
        ids = idmap.host_idmap()
    except LabctlError as exc:
        return Check(
            "subordinate ids", Status.WARN, f"{exc.message} (lxc machines need privileged: true)", exc.hint
        )
    return Check(
        "subordinate ids",
        Status.OK,
        f"container root is host uid {ids.uid}, gid {ids.gid} ({ids.size} ids mapped)",
    )


def check_link_support() -> Check:
    """Create and delete a throwaway bridge and veth pair: the real test of the kernel's support."""
    tag = uuid.uuid4().hex[:8]
    bridge, veth = f"lcdb{tag}", f"lcdv{tag}"
    try:
        runner.run(["ip", "link", "add", bridge, "type", "bridge"])
        runner.run(["ip", "link", "add", veth, "type", "veth", "peer", "name", f"lcdp{tag}"])
    except LabctlError as exc:
        return Check("bridge/veth", Status.FAIL, exc.message, "load the bridge and veth modules, run as root")
    finally:
        for name in (veth, bridge):
            runner.run(["ip", "link", "del", name], check=False)
    return Check("bridge/veth", Status.OK, "bridges and veth pairs can be created")


def host_routes() -> list[tuple[str, str]]:
    """(destination prefix, device) for every IPv4 route on the host."""
    out = runner.run(["ip", "-j", "-4", "route", "show", "table", "all"], check=False).stdout
    routes = []
    for entry in json.loads(out or "[]"):
        dst = entry.get("dst", "")
        if dst and dst != "default" and "." in dst:
            routes.append((dst if "/" in dst else f"{dst}/32", entry.get("dev", "")))
    return routes


def free_memory() -> int:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def free_disk(path: Path) -> int:
    probe = path
    while not probe.exists():
        probe = probe.parent
    return shutil.disk_usage(probe).free


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


Probe = Callable[[], Check]
