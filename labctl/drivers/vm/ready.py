"""Waiting for a VM to be ready, phase by phase, with each phase's duration recorded.

Phases: define (disk, seed, domain XML), boot (QEMU started), address (the guest answers at its
planned address), ssh (labctl logs in with the lab key, host key checked), first_boot (cloud-init
finished). A phase that does not complete names itself and the serial console log.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from labctl import ssh
from labctl.errors import DriverError, MachineTimeout

# Generous: under TCG on a busy 2-core host a Debian guest needs ~30-90 s to reach SSH.
TIMEOUTS = {"address": 300.0, "ssh": 120.0, "first_boot": 300.0}
POLL = 3.0


@dataclass
class Phases:
    """Durations in seconds, in the order the phases ran."""

    machine: str
    console_log: Path
    seconds: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        except MachineTimeout as exc:
            raise MachineTimeout(
                f"vm {self.machine}: phase '{phase}' did not complete: {exc.message}",
                f"see the serial console log: {self.console_log}",
            ) from exc
        self.seconds[phase] = round(time.monotonic() - started, 3)


def wait_address(host: str, alive: Callable[[], bool], console_log: Path) -> None:
    """Until the guest answers on port 22 (accepting or refusing), failing early if it stops."""
    deadline = time.monotonic() + TIMEOUTS["address"]
    while True:
        try:
            ssh.wait_for_port(host, 22, timeout=POLL)
            return
        except MachineTimeout:
            if not alive():
                raise DriverError(
                    "the VM stopped while booting", f"see the serial console log: {console_log}"
                ) from None
            if time.monotonic() >= deadline:
                raise MachineTimeout(f"{host} did not answer within {TIMEOUTS['address']:.0f} s") from None


def wait_first_boot(session: ssh.Session) -> None:
    """Until cloud-init has finished (exit 2 is 'done with recoverable errors', still done)."""
    try:
        result = session.run(["cloud-init", "status", "--wait"], timeout=TIMEOUTS["first_boot"])
    except DriverError as exc:
        if "did not finish" in exc.message:
            raise MachineTimeout(f"cloud-init did not finish within {TIMEOUTS['first_boot']:.0f} s") from exc
        raise
    if result.returncode not in (0, 2):
        detail = session.run(["cloud-init", "status", "--long"]).stdout.strip()
        raise DriverError(
            f"first boot failed: cloud-init reports an error: {detail or result.stderr.strip()}",
            "look at /var/log/cloud-init.log in the VM (labctl ssh) or the console log",
        )
