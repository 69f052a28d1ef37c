"""Where workloads run: the bare host, or a lab machine reached through its driver.

Every target describes itself (kind, device profile, accelerator, virtualization level) and
knows which host address it reaches for network workloads. Machine targets also report what the
host pays to keep them: start-up time from the driver's recorded phases and idle memory (RSS of
the qemu process for a VM, cgroup memory usage for a container).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labctl import addressing
from labctl.drivers import ExecResult
from labctl.labfile.models import Kind, Machine, Namespace
from labctl.run import run

if TYPE_CHECKING:
    from labctl.lab import LabRunner

LOOPBACK = "127.0.0.1"
CLOCKSOURCE = "/sys/devices/system/clocksource/clocksource0/current_clocksource"

# The course's levels, from no virtualization to full ISA emulation.
LEVELS = {
    "native": "native (no virtualization)",
    "os-level": "OS-level virtualization (namespaces and cgroups)",
    "paravirtualization": "paravirtualization (virtio devices, KVM)",
    "hardware-assisted": "hardware-assisted full virtualization (KVM, emulated devices)",
    "isa-emulation": "ISA emulation (QEMU TCG binary translation)",
}


@dataclass(frozen=True)
class TargetInfo:
    name: str
    kind: str  # host | ns | lxc | vm
    level: str  # a key of LEVELS
    devices: str | None = None  # vm only: paravirtual | emulated
    accel: str | None = None  # vm only: kvm | tcg
    box: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def level_of(kind: str, accel: str | None, devices: str | None) -> str:
    if kind == "host":
        return "native"
    if kind in ("ns", "lxc"):
        return "os-level"
    if accel == "tcg":
        return "isa-emulation"
    return "paravirtualization" if devices == "paravirtual" else "hardware-assisted"


class Target(abc.ABC):
    info: TargetInfo

    @property
    def name(self) -> str:
        return self.info.name

    @abc.abstractmethod
    def run(self, argv: Sequence[str], timeout: float) -> ExecResult: ...

    @abc.abstractmethod
    def server_address(self) -> str | None:
        """The host address this target reaches for network workloads; None: it has none."""

    def describe(self) -> dict[str, Any]:
        """Fingerprint entries that belong to this target."""
        result = self.run(["cat", CLOCKSOURCE], timeout=60)
        clock = result.stdout.strip() if result.returncode == 0 else None
        kernel = self.run(["uname", "-r"], timeout=60)
        return {
            **self.info.to_json(),
            "clocksource": clock,
            "kernel": kernel.stdout.strip() if kernel.returncode == 0 else None,
        }

    def cost(self) -> dict[str, Any]:
        """What the host pays for this target: start-up seconds and idle memory bytes."""
        return {}


class HostTarget(Target):
    def __init__(self) -> None:
        self.info = TargetInfo("host", "host", "native")

    def run(self, argv: Sequence[str], timeout: float) -> ExecResult:
        result = run(argv, check=False, timeout=timeout)
        return ExecResult(result.returncode, result.stdout, result.stderr)

    def server_address(self) -> str:
        # The host's own TCP/IP stack over loopback: no bridge, veth, tap or virtual NIC.
        return LOOPBACK


class MachineTarget(Target):
    def __init__(self, runner: LabRunner, machine: Machine) -> None:
        self.runner = runner
        self.machine = machine
        record = runner.context.state.machines().get(machine.name, {})
        accel = record.get("accel") if machine.kind is Kind.VM else None
        devices = machine.devices.value if machine.kind is Kind.VM else None
        self.info = TargetInfo(
            machine.name,
            machine.kind.value,
            level_of(machine.kind.value, accel, devices),
            devices,
            accel,
            machine.box,
        )

    @property
    def driver(self) -> Any:
        return self.runner.driver(self.machine.kind)

    def run(self, argv: Sequence[str], timeout: float) -> ExecResult:
        result: ExecResult = self.driver.run(self.machine, argv, timeout=timeout)
        return result

    def server_address(self) -> str | None:
        leases = addressing.leases_of(self.runner.lab, self.machine)
        if leases:
            return str(leases[0].gateway)
        if self.machine.kind is Kind.NS and Namespace.NET not in self.machine.namespaces:
            return LOOPBACK  # it shares the host's network namespace
        return None

    def cost(self) -> dict[str, Any]:
        record = self.runner.context.state.machines().get(self.machine.name, {})
        phases = record.get("phases") or {}
        startup = round(sum(float(v) for v in phases.values()), 3) if phases else None
        return {"startup_s": startup, "phases": phases, **self._memory()}

    def _memory(self) -> dict[str, Any]:
        if self.machine.kind is Kind.VM:
            # Through libvirt, which reads it on the VM's host: right for remote hosts too.
            qemu_rss = getattr(self.driver, "qemu_rss", None)
            rss = qemu_rss(self.machine) if callable(qemu_rss) else None
            return {"idle_memory_bytes": rss, "memory_source": "RSS of the qemu process"}
        usage = cgroup_memory(self._init_pid())
        return {"idle_memory_bytes": usage, "memory_source": "cgroup memory usage (includes page cache)"}

    def _init_pid(self) -> int | None:
        init_pid = getattr(self.driver, "init_pid", None)  # the container drivers have one
        pid = init_pid(self.machine) if callable(init_pid) else None
        return int(pid) if pid else None


def cgroup_memory(pid: int | None, root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """Memory charged to pid's cgroup (v1 memory controller, else v2), in bytes."""
    if pid is None or pid <= 0:
        return None
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return _read_int(root / "memory" / container_root(path) / "memory.usage_in_bytes")
    for line in lines:
        if line.startswith("0::"):
            return _read_int(root / container_root(line[3:]) / "memory.current")
    return None


def container_root(path: str) -> str:
    """The container's own cgroup: systemd inside a system container moves its init into a
    child (init.scope), which holds only part of the container's memory."""
    parts = [p for p in path.strip("/").split("/") if p]
    while len(parts) > 1 and parts[-1].endswith(".scope"):
        parts.pop()
    return "/".join(parts)


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None
