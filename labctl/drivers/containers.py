"""What the lxc and ns drivers share: names, timed phases, state records
(LabState serializes the writes of machines created in parallel)."""

from __future__ import annotations

import contextlib
import errno
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

from labctl.drivers import Driver, LabContext
from labctl.errors import DriverError
from labctl.labfile.models import Machine
from labctl.paths import labs_dir

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
MAX_NAME = 64  # lxc-* and runc accept longer, but cgroup and socket paths get long quickly


def container_name(context: LabContext, machine: Machine) -> str:
    """labctl-<lab id>-<machine>: unique per lab and machine, never a container labctl didn't make."""
    name = f"labctl-{context.lab.id}-{machine.name}"
    if len(name) > MAX_NAME or not _NAME.fullmatch(name):
        raise DriverError(
            f"container name {name!r} is too long or has characters lxc/runc refuse",
            f"use a shorter lab or machine name (at most {MAX_NAME} characters together)",
        )
    return name


def record(context: LabContext, machine: Machine, **fields: Any) -> None:
    context.state.update_machine(machine.name, kind=str(machine.kind), **fields)


class Phases:
    """Durations of the named steps of a create, for state.json and `labctl status`.

    An OSError in a phase (labctl's own writes under the data dir: a full disk, a quota) becomes
    a DriverError that names the phase and says what to free, not an unexplained exception."""

    def __init__(self, on_start: Callable[[str], None] | None = None) -> None:
        self.done: dict[str, float] = {}
        self.on_start = on_start

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        if self.on_start is not None:
            self.on_start(name)
        started = time.monotonic()
        try:
            yield
        except OSError as exc:
            raise phase_failed(name, exc) from exc
        finally:
            self.done[name] = round(time.monotonic() - started, 3)


def phase_failed(phase: str, exc: OSError) -> DriverError:
    what = exc.strerror or str(exc)
    if exc.filename:
        what += f": {exc.filename}"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        hint = f"free space where labctl keeps machines (df -h {labs_dir()}), then run labctl up again"
    else:
        hint = "run labctl up again (--debug shows where it failed)"
    return DriverError(f"phase '{phase}' failed: {what}", hint)


def create_or_undo(
    driver: Driver,
    machine: Machine,
    bring_up: Callable[[Machine, Phases], None],
    describe: Callable[[], dict[str, Any]],
) -> None:
    """Bring the machine up with timed phases; on any failure (Ctrl-C too) destroy what was made,
    else record the phases and what describe() returns."""
    phases = Phases(driver.context.progress(machine))
    try:
        bring_up(machine, phases)
    except BaseException:
        driver.destroy(machine)
        raise
    record(driver.context, machine, phases=phases.done, **describe())


def resume_and_record(
    driver: Driver,
    machine: Machine,
    bring_up: Callable[[Machine, Phases], None],
    describe: Callable[[], dict[str, Any]],
) -> None:
    """What create_or_undo does for a machine that exists already, without the undo: each step
    of bring_up checks what exists, so it completes whatever an interrupted create left."""
    phases = Phases(driver.context.progress(machine))
    bring_up(machine, phases)
    record(driver.context, machine, last_start_phases=phases.done, **describe())


def wait_until(predicate: Any, timeout: float, interval: float = 0.05) -> bool:
    """Poll predicate() until it is true or timeout passes; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
        interval = min(interval * 1.5, 0.5)


def ssh_answers(host: str, port: int = 22, timeout: float = 1.0) -> bool:
    """True when something at host:port sends an SSH banner (sshd is up, not just the port)."""
    import socket

    try:
        with socket.create_connection((host, port), timeout=timeout) as conn:
            conn.settimeout(timeout)
            return conn.recv(8).startswith(b"SSH-")
    except OSError:
        return False
