"""Waiting for a VM to be ready, phase by phase, with each phase's duration recorded.

Phases: define (disk, seed, domain XML), boot (QEMU started), address (the guest answers at its
planned address), ssh (labctl logs in with the lab key, host key checked), first_boot (cloud-init
finished). A phase that does not complete names itself and the serial console log.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from labctl import ssh
from labctl.errors import DriverError, MachineTimeout

# Generous: under TCG on a busy 2-core host a Debian guest needs ~30-90 s to reach SSH.
TIMEOUTS = {"address": 300.0, "ssh": 120.0, "first_boot": 300.0}
POLL = 3.0
FIRST_BOOT_POLL = 0.25
RESULT_FILE = "/run/cloud-init/result.json"


@dataclass
class Phases:
    """Durations in seconds, in the order the phases ran."""

    machine: str
    console_log: str  # a path, or host:path on a remote libvirt host
    on_start: Callable[[str], None] | None = None  # told each phase's name as it begins
    seconds: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        if self.on_start is not None:
            self.on_start(phase)
        started = time.monotonic()
        try:
            yield
        except MachineTimeout as exc:
            raise MachineTimeout(
                f"vm {self.machine}: phase '{phase}' did not complete: {exc.message}",
                f"see the serial console log: {self.console_log}",
            ) from exc
        self.seconds[phase] = round(time.monotonic() - started, 3)


def wait_address(endpoint: ssh.Endpoint, alive: Callable[[], bool], console_log: str) -> None:
    """Until the guest answers on port 22 (accepting or refusing), failing early if it stops."""
    host = endpoint.host
    deadline = time.monotonic() + TIMEOUTS["address"]
    while True:
        try:
            ssh.wait_for_port(host, endpoint.port, timeout=POLL, jump=endpoint.jump)
            return
        except MachineTimeout:
            if not alive():
                raise DriverError(
                    "the VM stopped while booting", f"see the serial console log: {console_log}"
                ) from None
            if time.monotonic() >= deadline:
                raise MachineTimeout(f"{host} did not answer within {TIMEOUTS['address']:.0f} s") from None


def wait_first_boot(session: ssh.Session) -> None:
    """Until cloud-init has finished its last stage, failing when it reports errors.

    cloud-init writes /run/cloud-init/result.json when its final stage ends. Reading it with cat
    costs a few milliseconds; `cloud-init status --wait` would first start a Python program,
    which alone takes seconds in a TCG guest.
    """
    deadline = time.monotonic() + TIMEOUTS["first_boot"]
    while True:
        result = session.run(["cat", RESULT_FILE], timeout=TIMEOUTS["first_boot"])
        if result.returncode == 0:
            errors = _cloud_init_errors(result.stdout)
            if errors:
                raise DriverError(
                    f"first boot failed: cloud-init reports: {'; '.join(errors)}",
                    "look at /var/log/cloud-init.log in the VM (labctl ssh) or the console log",
                )
            return
        if time.monotonic() >= deadline:
            raise MachineTimeout(f"cloud-init did not finish within {TIMEOUTS['first_boot']:.0f} s")
        time.sleep(FIRST_BOOT_POLL)


def _cloud_init_errors(text: str) -> list[str]:
    """The errors listed in cloud-init's result.json ({"v1": {"errors": [...]}})."""
    try:
        data = json.loads(text)
    except ValueError:
        return [f"unreadable {RESULT_FILE}"]
    errors = data.get("v1", {}).get("errors", []) if isinstance(data, dict) else []
    return [str(e) for e in errors]
