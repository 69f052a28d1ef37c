"""The comparison lab: one machine of each kind from one box, created for a bench and destroyed after.

The labfile is generated (never hand-edited) into a fresh directory under
labctl_home()/bench/, so the lab has its own id, state and data dir and cannot touch the user's
labs. All machines get the same cpus and memory and sit on one isolated network whose /24 is
chosen to collide with no host route. Machines are created one at a time so that each one's
recorded start-up phases are not inflated by its siblings booting on the same cores.
"""

from __future__ import annotations

import contextlib
import signal
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labctl import addressing, console, host
from labctl.errors import DriverError, UsageError
from labctl.paths import labctl_home, remove_tree

if TYPE_CHECKING:
    from labctl.lab import LabRunner

# name: labfile keys of the machine (besides box, cpus, memory, networks)
KINDS: dict[str, dict[str, Any]] = {
    "ns": {"kind": "ns"},
    "lxc": {"kind": "lxc"},
    "vm-paravirtual": {"kind": "vm", "devices": "paravirtual"},
    "vm-emulated": {"kind": "vm", "devices": "emulated"},
    # ISA-level emulation even where KVM works, so every level of the course appears.
    "vm-tcg": {"kind": "vm", "devices": "paravirtual", "accel": "tcg"},
}
DEFAULT_KINDS = ("ns", "lxc", "vm-paravirtual", "vm-emulated")
NETWORK = "bench"


def default_kinds(kvm: bool | None = None) -> list[str]:
    usable = host.kvm_usable()[0] if kvm is None else kvm
    return [*DEFAULT_KINDS, "vm-tcg"] if usable else list(DEFAULT_KINDS)


def parse_kinds(text: str) -> list[str]:
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise UsageError(
            f"--kinds: unknown kind {', '.join(unknown) or '(none)'}", f"choose from {', '.join(KINDS)}"
        )
    return kinds


def labfile(box: str, kinds: Sequence[str], cidr: str, cpus: int, memory: str) -> dict[str, Any]:
    """The comparison lab as labfile data (dumped with yaml.safe_dump: nothing pasted into text)."""
    machines = {name: {**KINDS[name], "networks": [NETWORK]} for name in kinds}
    return {
        "name": "bench",
        "defaults": {"box": box, "cpus": cpus, "memory": memory},
        "networks": {NETWORK: {"cidr": cidr, "mode": "isolated"}},
        "machines": machines,
    }


@contextlib.contextmanager
def comparison_lab(
    box: str, kinds: Sequence[str], cpus: int = 1, memory: str = "768M"
) -> Iterator[LabRunner]:
    """Create the lab, yield its runner, and always destroy it (also on Ctrl-C and failure)."""
    import yaml

    from labctl.lab import LabRunner
    from labctl.labfile import load_lab

    base = labctl_home() / "bench"
    base.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="lab-", dir=base))
    cidr = addressing.free_subnet([dst for dst, _ in host.host_routes()])
    path = root / "labfile.yml"
    path.write_text(yaml.safe_dump(labfile(box, kinds, cidr, cpus, memory), sort_keys=False))
    runner = LabRunner(load_lab(str(path)))
    console.info(f"comparison lab {runner.lab.id} in {root} on {cidr}: {', '.join(kinds)}")
    try:
        _create(runner)
        yield runner
    finally:
        with _no_interrupts():
            _teardown(runner, root)


def _create(runner: LabRunner) -> None:
    with runner.context.state.lock():
        for machine in runner.lab.machines:
            with console.step(f"creating {machine.name}"):
                outcome = runner.up([machine])[0]
            if outcome.error is not None:
                raise DriverError(
                    f"the comparison lab's {machine.name} could not be created: {outcome.error.message}",
                    outcome.error.hint or "fix the cause above, or leave that kind out with --kinds",
                )


def _teardown(runner: LabRunner, root: Path) -> None:
    with console.step(f"destroying comparison lab {runner.lab.id}"):
        outcomes = runner.destroy(list(runner.lab.machines))
    if any(o.error for o in outcomes):
        console.warn(
            f"comparison lab {runner.lab.id} was not fully removed; run: labctl -f {root / 'labfile.yml'} destroy"
        )
        return
    remove_tree(root, labctl_home() / "bench", ignore_errors=True)


@contextlib.contextmanager
def _no_interrupts() -> Iterator[None]:
    """A second Ctrl-C during teardown would leave VMs and bridges behind: hold it until done."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
