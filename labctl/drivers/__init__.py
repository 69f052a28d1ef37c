"""The driver interface: one small contract, one module per kind, loaded only when used.

A driver turns a Machine of its kind into something running and back. Everything shared between
kinds (labfile model, state, networks, SSH keys, box store) reaches it through a LabContext.
"""

from __future__ import annotations

import abc
import enum
import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from labctl.errors import UsageError
from labctl.failpoints import failpoint
from labctl.labfile.models import Kind, Lab, Machine
from labctl.paths import labctl_home, labs_dir, own_dir, remove_tree
from labctl.state import LabState, bind

if TYPE_CHECKING:
    from labctl.box import BoxStore
    from labctl.sshjump import JumpHost


class MachineState(enum.StrEnum):
    NOT_CREATED = "not created"
    STOPPED = "stopped"
    RUNNING = "running"
    PAUSED = "paused"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class ExecResult:
    returncode: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class SshTarget:
    """How OpenSSH, paramiko and Ansible reach a machine."""

    host: str
    port: int
    user: str
    key: Path
    jump: JumpHost | None = None  # reach host through this SSH server (VMs on a remote libvirt)

    def proxy_options(self) -> list[str]:
        """OpenSSH options that route the connection through the jump host, if any."""
        return ["-o", f"ProxyCommand={self.jump.proxy_command()}"] if self.jump else []


class LabContext:
    """What every driver of one lab shares."""

    def __init__(self, lab: Lab, store: BoxStore | None = None) -> None:
        self.lab = bind(lab)
        self.state = LabState(self.lab.root, self.lab.id, self.lab.file)
        self._store = store

    @property
    def store(self) -> BoxStore:
        if self._store is None:
            from labctl.box import BoxStore

            self._store = BoxStore()
        return self._store

    @property
    def data_dir(self) -> Path:
        """Disks, overlays and seeds: outside the user's tree so the qemu user can read them."""
        return labs_dir() / self.lab.id

    def remove(self, path: Path, *, ignore_errors: bool = False) -> None:
        """Remove a file or tree of this lab: only inside its data directory or its .labctl/."""
        remove_tree(path, self.data_dir, self.state.dir, ignore_errors=ignore_errors)

    def prepare_data_dir(self, kind: str | None = None, mode: int = 0o711) -> Path:
        """labs/<id>/ (and labs/<id>/<kind>/), search-only for others: the qemu user and mapped
        container roots pass through, nobody lists. What lies below is 0700 unless it must not be.
        """
        home = labctl_home()
        home.mkdir(parents=True, exist_ok=True)
        own_dir(labs_dir(), 0o711)
        own_dir(self.data_dir, 0o711)
        return own_dir(self.data_dir / kind, mode) if kind else self.data_dir

    def progress(self, machine: Machine) -> Callable[[str], None]:
        """Records the phase of a create or start as it begins: `labctl status` shows where a
        machine got to, and the fault-injection tests stop labctl at exactly that point."""

        def record(phase: str) -> None:
            self.state.update_machine(machine.name, progress=phase)
            failpoint(machine.name, phase)

        return record

    @property
    def key_path(self) -> Path:
        """The lab's private SSH key (0600); the public key is key_path + '.pub'."""
        return self.state.dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.state.dir / "known_hosts"


class Driver(abc.ABC):
    """Create, start, stop, destroy, inspect and enter machines of one kind."""

    kind: Kind

    def __init__(self, context: LabContext) -> None:
        self.context = context

    @property
    def lab(self) -> Lab:
        return self.context.lab

    def check_host(self, machines: Sequence[Machine]) -> None:  # noqa: B027 - optional hook
        """Raise HostError before anything is created if this host cannot run these machines."""

    @abc.abstractmethod
    def create(self, machine: Machine) -> None:
        """Create and start the machine and wait until it is ready (exec works, first boot done).
        On failure, remove what this call created and raise."""

    @abc.abstractmethod
    def start(self, machine: Machine) -> None:
        """Start a stopped machine and wait until it is ready."""

    @abc.abstractmethod
    def resume(self, machine: Machine) -> None:
        """Finish a machine that exists but that no `up` saw ready (one was killed during its
        create or start, or its record was lost): complete whatever step is missing, start it
        if it is not running, wait until it is ready, and record what create records. On
        failure, leave it for the next resume or destroy; remove nothing."""

    @abc.abstractmethod
    def stop(self, machine: Machine, timeout: float = 60.0) -> None:
        """Clean shutdown; force after `timeout` seconds."""

    @abc.abstractmethod
    def destroy(self, machine: Machine) -> None:
        """Remove every trace of the machine; succeeds when it does not exist."""

    @abc.abstractmethod
    def state(self, machine: Machine) -> MachineState: ...

    @abc.abstractmethod
    def address(self, machine: Machine) -> str | None:
        """The machine's first lab address, when it has one."""

    @abc.abstractmethod
    def exec(self, machine: Machine, argv: Sequence[str], *, tty: bool = False) -> int:
        """Run argv in the machine with this process's stdin/stdout/stderr; return its exit code."""

    @abc.abstractmethod
    def run(
        self,
        machine: Machine,
        argv: Sequence[str],
        *,
        input: bytes | None = None,
        timeout: float | None = None,
    ) -> ExecResult:
        """Run argv in the machine and capture its output."""

    def run_streaming(
        self,
        machine: Machine,
        argv: Sequence[str],
        on_line: Callable[[str], None],
        *,
        input: bytes | None = None,
        timeout: float | None = None,
    ) -> int:
        """Run argv, handing each line of its output (stdout and stderr) to on_line as it comes;
        return the exit code. This default delivers the lines when the command ends; drivers
        that can stream override it."""
        result = self.run(machine, argv, input=input, timeout=timeout)
        for line in (result.stdout + result.stderr).splitlines():
            on_line(line)
        return result.returncode

    def ssh_target(self, machine: Machine) -> SshTarget | None:
        """Where OpenSSH reaches the machine, or None when it runs no sshd."""
        return None

    def snapshot_save(self, machine: Machine, tag: str) -> None:
        raise self._no_snapshots()

    def snapshot_restore(self, machine: Machine, tag: str) -> None:
        raise self._no_snapshots()

    def snapshot_list(self, machine: Machine) -> list[str]:
        raise self._no_snapshots()

    def snapshot_delete(self, machine: Machine, tag: str) -> None:
        raise self._no_snapshots()

    def _no_snapshots(self) -> UsageError:
        return UsageError(f"{self.kind.value} machines have no snapshots")


DRIVERS: dict[Kind, tuple[str, str]] = {
    Kind.VM: ("labctl.drivers.vm", "VmDriver"),
    Kind.LXC: ("labctl.drivers.lxc", "LxcDriver"),
    Kind.NS: ("labctl.drivers.ns", "NsDriver"),
}


def driver_for(kind: Kind, context: LabContext) -> Driver:
    module_name, class_name = DRIVERS[kind]
    driver_class: type[Driver] = getattr(importlib.import_module(module_name), class_name)
    return driver_class(context)
