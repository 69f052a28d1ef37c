"""The labfile as frozen, typed models. Closed choices are enums shared by schema and CLI."""

from __future__ import annotations

import enum
import hashlib
import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class Kind(enum.StrEnum):
    VM = "vm"
    LXC = "lxc"
    NS = "ns"


class NetworkMode(enum.StrEnum):
    ISOLATED = "isolated"
    NAT = "nat"


class DeviceProfile(enum.StrEnum):
    PARAVIRTUAL = "paravirtual"
    EMULATED = "emulated"


class Accel(enum.StrEnum):
    AUTO = "auto"
    KVM = "kvm"
    TCG = "tcg"


class Namespace(enum.StrEnum):
    PID = "pid"
    NET = "net"
    UTS = "uts"
    IPC = "ipc"
    MNT = "mnt"
    USER = "user"
    CGROUP = "cgroup"


DEFAULT_NAMESPACES = frozenset({Namespace.PID, Namespace.NET, Namespace.UTS, Namespace.IPC, Namespace.MNT})


@dataclass(frozen=True)
class Network:
    name: str
    cidr: ipaddress.IPv4Network
    mode: NetworkMode
    declared: bool = True  # False for the network a lab gets when it declares none

    @property
    def gateway(self) -> ipaddress.IPv4Address:
        """The host's address on the lab bridge (also DHCP and DNS server)."""
        return self.cidr.network_address + 1


@dataclass(frozen=True)
class Attachment:
    network: str
    ip: ipaddress.IPv4Address | None = None


@dataclass(frozen=True)
class ShellStep:
    inline: str | None = None
    script: Path | None = None
    args: tuple[str, ...] = ()

    @property
    def title(self) -> str:
        return f"shell {self.script.name}" if self.script else "shell"


@dataclass(frozen=True)
class FileStep:
    src: Path
    dest: str
    mode: int | None = None

    @property
    def title(self) -> str:
        return f"file {self.src.name} -> {self.dest}"


@dataclass(frozen=True)
class AnsibleStep:
    playbook: Path
    extra_vars: tuple[tuple[str, Any], ...] = ()

    @property
    def title(self) -> str:
        return f"ansible {self.playbook.name}"


ProvisionStep = ShellStep | FileStep | AnsibleStep


@dataclass(frozen=True)
class Machine:
    name: str
    kind: Kind
    box: str | None
    cpus: int
    memory: int  # bytes
    networks: tuple[Attachment, ...] = ()
    provision: tuple[ProvisionStep, ...] = ()
    groups: tuple[str, ...] = ()
    # vm only
    disk: int | None = None  # bytes
    devices: DeviceProfile = DeviceProfile.PARAVIRTUAL
    accel: Accel = Accel.AUTO
    libvirt_uri: str | None = None
    # lxc only: no id mapping, container root is host root (see labctl.idmap)
    privileged: bool = False
    # ns only
    namespaces: frozenset[Namespace] = field(default_factory=frozenset)
    command: tuple[str, ...] = ()

    @property
    def memory_mib(self) -> int:
        return self.memory // (1024 * 1024)


HOST = "host"  # what a check's `on:` names for the host itself


@dataclass(frozen=True)
class RunProbe:
    """A command, with the exit code and output it must give."""

    argv: tuple[str, ...]
    shown: str  # how the labfile wrote it, for messages
    exit: int = 0
    stdout: re.Pattern[str] | None = None
    stderr: re.Pattern[str] | None = None


@dataclass(frozen=True)
class HttpProbe:
    """A GET request, with the status (and optionally the body) it must answer."""

    url: str
    status: int = 200
    body: re.Pattern[str] | None = None


@dataclass(frozen=True)
class TcpProbe:
    """A TCP connect, expected to succeed (open) or to be refused or time out (closed)."""

    host: str
    port: int
    open: bool = True


Probe = RunProbe | HttpProbe | TcpProbe


@dataclass(frozen=True)
class Check:
    """One progress check of a lab: a probe run on a machine (or the host), with retries."""

    name: str
    on: str  # a machine name, or HOST
    probe: Probe
    step: str | None = None
    description: str | None = None
    retries: int = 0
    interval: float = 1.0  # seconds between attempts
    timeout: float = 30.0  # seconds per attempt


# Hex digits of SHA-256(lab directory) in a lab id: 48 bits, so that two directories do not
# collide by chance (24 bits did within a few thousand). Labs made before keep their 6 digits
# (labctl.state.bind reads which one a lab has), as every name of their objects holds the id.
ID_DIGITS = 12
LEGACY_ID_DIGITS = 6


@dataclass(frozen=True)
class Lab:
    name: str
    file: Path  # absolute path of the labfile
    networks: tuple[Network, ...]
    machines: tuple[Machine, ...]
    libvirt_uri: str = "qemu:///system"
    id_digits: int = ID_DIGITS
    checks: tuple[Check, ...] = ()

    @property
    def root(self) -> Path:
        """The labfile's directory: relative paths and .labctl/ live here."""
        return self.file.parent

    @property
    def id(self) -> str:
        """Unique per labfile location, so two labs named 'demo' in two folders never collide."""
        digest = hashlib.sha256(str(self.root).encode()).hexdigest()[: self.id_digits]
        return f"{self.name}-{digest}"

    @property
    def legacy_id(self) -> bool:
        """Whether the lab was made before ids were widened (its short id is kept)."""
        return self.id_digits == LEGACY_ID_DIGITS

    def machine(self, name: str) -> Machine:
        for machine in self.machines:
            if machine.name == name:
                return machine
        raise KeyError(name)

    def network(self, name: str) -> Network:
        for network in self.networks:
            if network.name == name:
                return network
        raise KeyError(name)

    def uri_for(self, machine: Machine) -> str:
        return machine.libvirt_uri or self.libvirt_uri
