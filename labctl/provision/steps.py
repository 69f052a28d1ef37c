"""Run a machine's provisioning steps in the order written: shell, file and ansible.

Every line a step prints appears live as `web | ...`. The first step that fails stops that
machine's provisioning with a ProvisionError naming the step (number and title), its exit code
and the tail of its output; other machines carry on (the caller runs machines in parallel).
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from labctl import console, localtree
from labctl.errors import DriverError, ProvisionError
from labctl.failpoints import failpoint
from labctl.labfile.models import AnsibleStep, FileStep, Kind, Machine, ProvisionStep, ShellStep
from labctl.provision.transport import Transport, open_transport

if TYPE_CHECKING:
    from labctl.drivers import Driver, LabContext

TAIL_LINES = 15
# Each script goes into a directory mktemp creates for that one run (a fresh random name, 0700,
# made atomically), runs from there and is removed with it. Never a fixed path: in a
# world-writable /var/tmp a guest user could create that directory first, or swap the script
# for their own between upload and run, and have it run as root.
PRIVATE_DIR = ["mktemp", "-d", "-t", "labctl-provision.XXXXXXXXXX"]


class MachineOutput:
    """Prints a machine's output live, prefixed with its name, and keeps the last lines."""

    def __init__(self, machine: str) -> None:
        self.machine = machine
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)

    def __call__(self, line: str) -> None:
        self.tail.append(line)
        console.info(f"{self.machine} | {line}")

    def take_tail(self) -> list[str]:
        lines = [line for line in self.tail if line.strip()]
        self.tail.clear()
        return lines


def steps_digest(steps: Sequence[ProvisionStep]) -> str:
    """Which provisioning steps a record's progress refers to: the ones that finished."""
    import hashlib

    return hashlib.sha256(repr(tuple(steps)).encode()).hexdigest()[:16]


class Provisioner:
    """Provisions the machines of one lab; safe to call from several threads at once."""

    def __init__(self, context: LabContext, driver: Callable[[Kind], Driver]) -> None:
        self.context = context
        self.driver = driver
        self._inventory: Path | None = None
        self._inventory_lock = threading.Lock()

    def provision(self, machine: Machine, *, resume: bool = False) -> str:
        """Run the steps of machine in order, recording each one done, and return the verb for
        the summary. resume: skip the steps an earlier run finished (an `up` that was killed or
        failed part way), as long as the labfile's steps are still the ones it ran."""
        if not machine.provision:
            return "nothing to provision"
        done = self._steps_done(machine) if resume else 0
        state = self.context.state
        steps = machine.provision
        state.update_machine(
            machine.name, provisioned_steps=done, provision_digest=steps_digest(steps[:done])
        )
        output = MachineOutput(machine.name)
        transport = open_transport(self.context, self.driver(machine.kind), machine)
        with contextlib.closing(transport):
            for index, step in enumerate(machine.provision, 1):
                if index <= done:
                    console.info(
                        f"{machine.name}: step {index}/{len(machine.provision)} ({step.title}): done before"
                    )
                    continue
                self._step(transport, machine, index, step, output)
                state.update_machine(
                    machine.name, provisioned_steps=index, provision_digest=steps_digest(steps[:index])
                )
                failpoint(machine.name, f"provisioned-{index}")
        state.update_machine(machine.name, provisioned_at=time.time())
        return "provisioned"

    def _steps_done(self, machine: Machine) -> int:
        """How many leading steps an earlier run finished that the labfile still has unchanged.
        The step that failed (or was cut off) and those after it may have been edited since: the
        fix of a failed step is what the next `up` runs. A finished step that changed since
        makes every step run again, as its effect may be what later ones built on."""
        record = self.context.state.machines().get(machine.name, {})
        done = record.get("provisioned_steps", 0)
        if not isinstance(done, int) or not 0 <= done <= len(machine.provision):
            return 0
        if record.get("provision_digest") != steps_digest(machine.provision[:done]):
            return 0  # never run, or a finished step changed since: all of them again
        return done

    def _step(
        self, transport: Transport, machine: Machine, index: int, step: ProvisionStep, output: MachineOutput
    ) -> None:
        where = f"step {index}/{len(machine.provision)} ({step.title})"
        with console.step(f"{machine.name}: {where}"):
            try:
                code = self._run(transport, machine, index, step, output)
            except (DriverError, ProvisionError) as exc:  # ProvisionError: a file it refuses to read
                raise ProvisionError(f"{where} failed: {exc.message}", exc.hint) from exc
            tail = output.take_tail()
            if code != 0:
                raise ProvisionError(
                    f"{where} exited {code}" + "".join(f"\n  {line}" for line in tail),
                    f"fix the step, then run labctl up (it goes on from this step) or labctl provision {machine.name} (every step)",
                )

    def _run(
        self, transport: Transport, machine: Machine, index: int, step: ProvisionStep, output: MachineOutput
    ) -> int:
        if isinstance(step, ShellStep):
            return run_shell(transport, index, step, output, self.context.lab.root)
        if isinstance(step, FileStep):
            from labctl.provision.archive import file_archive

            transport.extract(*file_archive(self.context.lab.root, step))
            return 0
        return self._ansible(machine, step, output)

    def _ansible(self, machine: Machine, step: AnsibleStep, output: MachineOutput) -> int:
        from labctl.provision.ansible import run_playbook

        return run_playbook(
            self.context.prepare_data_dir("ansible", 0o700) / machine.name,
            self.inventory(),
            step.playbook,
            machine.name,
            dict(step.extra_vars),
            output,
        )

    def inventory(self) -> Path:
        """The lab's inventory file for ansible-runner, written once per Provisioner."""
        from labctl.provision import inventory

        with self._inventory_lock:
            if self._inventory is None:
                path = self.context.prepare_data_dir("ansible", 0o700) / "inventory.yml"
                inventory.write(path, inventory.build(self.context, self.driver))
                self._inventory = path
            return self._inventory


def run_shell(
    transport: Transport, index: int, step: ShellStep, output: Callable[[str], None], lab_root: Path
) -> int:
    """Upload the text or script, run it with its args, remove it; returns its exit code."""
    if step.script is not None:
        # Read like a file step's src: a script swapped for a link to a host file is refused.
        data, name = localtree.read_file(lab_root, step.script), step.script.name
    else:
        data, name = (step.inline or "").encode(), "inline.sh"
    directory = private_dir(transport)
    try:
        remote = f"{directory}/{index:02d}-{name}"
        transport.write(data, remote, 0o700)
        # A script with #! chooses its interpreter; anything else is POSIX sh text.
        argv = [remote, *step.args] if data.startswith(b"#!") else ["/bin/sh", remote, *step.args]
        return transport.stream(argv, output)
    finally:
        with contextlib.suppress(DriverError):
            transport.stream(["rm", "-rf", "--", directory], lambda _line: None)


def private_dir(transport: Transport) -> str:
    """A new directory only root can enter, made by mktemp in the machine; its absolute path."""
    lines: list[str] = []
    code = transport.stream(PRIVATE_DIR, lines.append)
    path = PurePosixPath(lines[0]) if len(lines) == 1 else None
    if code != 0 or path is None or not path.is_absolute() or not path.name.startswith("labctl-provision."):
        detail = " ".join(lines).strip() or f"exit code {code}"
        raise DriverError(
            f"cannot create a private directory for the script with mktemp: {detail}",
            "the machine needs mktemp (coreutils or busybox) and a writable $TMPDIR or /tmp",
        )
    return str(path)
