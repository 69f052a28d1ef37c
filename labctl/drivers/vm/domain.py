"""The libvirt domain of a VM: its name, its files in the lab's data dir, and its XML."""

from __future__ import annotations

import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labctl import addressing, templating
from labctl.accel import Engine
from labctl.errors import BoxError, HostError
from labctl.labfile.models import DeviceProfile, Lab, Machine
from labctl.libvirt_util import NAME_PREFIX
from labctl.paths import inside, own_dir


def domain_name(lab: Lab, machine: Machine) -> str:
    return f"{NAME_PREFIX}{lab.id}-{machine.name}"


@dataclass(frozen=True)
class GuestPaths:
    """Where the hypervisor's host finds a VM's disk, seed and serial log (it may be remote)."""

    overlay: str
    seed: str
    console_log: str


@dataclass(frozen=True)
class MachineFiles:
    """What a VM owns on disk, all in <data dir>/vm/<machine>/ (the qemu user reads them)."""

    dir: Path

    @classmethod
    def of(cls, data_dir: Path, machine: Machine) -> MachineFiles:
        return cls(data_dir / "vm" / machine.name)

    @property
    def overlay(self) -> Path:
        return inside(self.dir, "disk.qcow2")

    @property
    def seed(self) -> Path:
        return inside(self.dir, "seed.iso")

    @property
    def console_log(self) -> Path:
        return inside(self.dir, "console.log")

    @property
    def paths(self) -> GuestPaths:
        return GuestPaths(str(self.overlay), str(self.seed), str(self.console_log))

    def prepare(self) -> None:
        """Create the directory chain, each 0711: the qemu user passes through, nobody lists."""
        # labs/, labs/<lab id>/, vm/ and vm/<machine>/ are labctl's own: make them 0711 whatever
        # the umask (the files below are 0600, and libvirt hands them to qemu while it runs); the
        # directories above them are only checked.
        self.dir.parents[2].parent.mkdir(parents=True, exist_ok=True)
        for directory in (*reversed(self.dir.parents[:3]), self.dir):
            own_dir(directory, 0o711)
        check_traversable(self.dir)


def check_traversable(directory: Path) -> None:
    """Refuse a data dir that the qemu user (not root) cannot reach."""
    for parent in (directory, *directory.parents):
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            raise HostError(
                f"{parent} is not searchable by other users (mode {stat.S_IMODE(mode):04o}), so QEMU cannot read the VM disks under it",
                f"chmod o+x {parent}, or set LABCTL_HOME to a directory under a world-searchable path",
            )


@dataclass(frozen=True)
class BootFiles:
    disk: Path
    kernel: Path
    initrd: Path
    cmdline: str


def boot_files(box: Any) -> BootFiles:
    """The box's disk, kernel and initrd for direct kernel boot; BoxError when one is missing."""
    kernel, initrd = box.kernel, box.initrd
    if kernel is None or initrd is None or not Path(box.disk).is_file():
        raise BoxError(
            f"box {box.name} has no disk, kernel or initrd for VMs",
            f"rebuild it: labctl box build {box.name}",
        )
    return BootFiles(
        Path(box.disk), Path(kernel), Path(initrd), box.cmdline or "root=LABEL=labctl-root rw console=ttyS0"
    )


def render_xml(lab: Lab, machine: Machine, engine: Engine, boot: BootFiles, paths: GuestPaths) -> str:
    """The domain XML of machine: devices from its profile, CPU and clock from the engine."""
    return templating.render(
        "libvirt/domain.xml.j2",
        name=domain_name(lab, machine),
        lab_id=lab.id,
        machine=machine.name,
        engine=engine.value,
        domain_type=engine.domain_type,
        paravirtual=machine.devices is DeviceProfile.PARAVIRTUAL,
        memory_mib=machine.memory_mib,
        cpus=machine.cpus,
        kernel=str(boot.kernel),
        initrd=str(boot.initrd),
        cmdline=boot.cmdline,
        overlay=paths.overlay,
        seed=paths.seed,
        console_log=paths.console_log,
        interfaces=[
            {"mac": lease.mac, "network": addressing.libvirt_network_name(lab, lab.network(lease.network))}
            for lease in addressing.leases_of(lab, machine)
        ],
    )
