"""Orchestration: bring a whole lab up, down or away, machine by machine, through the drivers.

Machines are created in parallel by a bounded pool. One failing machine does not stop the others:
its partial resources are removed by its driver, the failure is reported with its name and
reason, and running `up` again completes the lab.
"""

from __future__ import annotations

import concurrent.futures
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from labctl import console
from labctl.drivers import Driver, LabContext, MachineState, driver_for
from labctl.errors import BoxError, DriverError, LabctlError, UsageError
from labctl.labfile.models import Kind, Lab, Machine

MAX_WORKERS = 4


@dataclass(frozen=True)
class Outcome:
    machine: str
    action: str  # created | resumed | started | running | stopped | destroyed | failed
    seconds: float
    error: LabctlError | None = None


class LabRunner:
    """The verbs that act on several machines of one lab."""

    def __init__(self, lab: Lab) -> None:
        self.context = LabContext(lab)
        self.lab = self.context.lab  # as its state knows it (see labctl.state.bind)
        self._drivers: dict[Kind, Driver] = {}
        self._drivers_lock = threading.Lock()

    def driver(self, kind: Kind) -> Driver:
        # Called from the worker threads too: one driver per kind, shared by all of them.
        with self._drivers_lock:
            if kind not in self._drivers:
                self._drivers[kind] = driver_for(kind, self.context)
            return self._drivers[kind]

    def select(self, names: Sequence[str]) -> list[Machine]:
        """The named machines in labfile order, or all of them; unknown names are a usage error."""
        known = [m.name for m in self.lab.machines]
        unknown = [n for n in names if n not in known]
        if unknown:
            raise UsageError(
                f"no machine named {', '.join(unknown)} in lab {self.lab.name}",
                f"machines: {', '.join(known)}",
            )
        return [m for m in self.lab.machines if not names or m.name in names]

    def machine(self, name: str) -> Machine:
        return self.select([name])[0]

    def state_of(self, machine: Machine) -> MachineState:
        if machine.name not in self.context.state.machines():
            return MachineState.NOT_CREATED
        return self.driver(machine.kind).state(machine)

    # -- up ---------------------------------------------------------------------------------------

    def up(self, machines: Sequence[Machine], provision: bool | None = None) -> list[Outcome]:
        """provision: None provisions machines never provisioned yet (new ones), True all, False none."""
        from labctl import keys, network, placement, state

        placement.check(self.lab)
        self._ensure_boxes(machines)
        for kind in {m.kind for m in machines}:
            self.driver(kind).check_host([m for m in machines if m.kind is kind])
        self.context.state.ensure_dir()
        self.context.prepare_data_dir()
        state.claim_id(self.lab)
        keys.ensure_keypair(self.context.key_path, f"labctl-{self.lab.id}")
        self._register_boxes(machines)
        if any(m.networks for m in machines):
            with console.step("networks"):
                network.check_collisions(self.lab)
                network.ensure_networks(self.lab)
        outcomes = self._parallel(machines, self._bring_up)
        if provision is False:
            return outcomes
        # Like Vagrant: new machines, and machines whose provisioning never finished.
        records = self.context.state.machines()
        chosen = [
            o.machine
            for o in outcomes
            if not o.error
            and (provision or o.action == "created" or "provisioned_at" not in records.get(o.machine, {}))
        ]
        # --provision runs every step again; otherwise a machine whose provisioning an earlier
        # `up` left part way resumes after the last step that finished.
        provisioned = self.provision(
            [m for m in machines if m.name in chosen and m.provision], resume=not provision
        )
        failures = {o.machine: o for o in provisioned if o.error}
        return [failures.get(o.machine, o) for o in outcomes]

    def provision(self, machines: Sequence[Machine], *, resume: bool = False) -> list[Outcome]:
        """Run each machine's provisioning steps (machines in parallel, steps in order)."""
        from labctl.provision import Provisioner

        provisioner = Provisioner(self.context, self.driver)
        return self._parallel(machines, lambda machine: provisioner.provision(machine, resume=resume))

    def _bring_up(self, machine: Machine) -> str:
        """Create, start or finish the machine until it is ready; the verb for the summary.

        The record's status says how far an earlier `up` got: `creating` or `starting` (or no
        record, after a lost .labctl/) means it never saw the machine ready, because it was
        killed, interrupted or failed. Such a machine is finished from what exists and waited
        for, never reported running on the driver's word alone."""
        driver = self.driver(machine.kind)
        state = self.context.state
        current = driver.state(machine)
        if current is MachineState.NOT_CREATED:
            record = state.machines().get(machine.name)
            if record and record.get("status") == "creating":
                # A create killed before the machine existed for its driver (an LXC machine
                # half-way through seeding its root) leaves files a new create must not build
                # on: remove them first. destroy succeeds on whatever is there.
                driver.destroy(machine)
            state.replace_machine(machine.name, kind=machine.kind.value, box=machine.box, status="creating")
            driver.create(machine)
            self._mark_ready(machine, created_at=time.time())
            return "created"
        record = state.machines().get(machine.name)
        status = record.get("status") if record else None
        if status != "created":
            console.info(f"{machine.name}: {_unfinished(status)}; finishing it")
            state.update_machine(
                machine.name, kind=machine.kind.value, box=machine.box, status=status or "starting"
            )
            driver.resume(machine)
            self._mark_ready(machine, **({"created_at": time.time()} if status != "starting" else {}))
            return "resumed"
        if current is MachineState.RUNNING:
            return "running"
        state.update_machine(machine.name, status="starting")
        driver.start(machine)
        self._mark_ready(machine)
        return "started"

    def _mark_ready(self, machine: Machine, **fields: float) -> None:
        self.context.state.update_machine(machine.name, status="created", progress=None, **fields)

    def _ensure_boxes(self, machines: Iterable[Machine]) -> None:
        """Build, once, the boxes the lab needs that have a recipe but are not in the store yet
        (as Vagrant fetches a missing box on first `up`)."""
        store = self.context.store
        missing = sorted({m.box for m in machines if m.box and not store.has(m.box)})
        if not missing:
            return
        from labctl.box.build import build_box

        recipes = store.recipe_names()
        for name in missing:
            if name not in recipes:
                raise BoxError(
                    f"box {name} is not in the store and labctl has no recipe for it",
                    f"add it with: labctl box add {name} FILE --sha256 HEX",
                )
            console.notice(f"box {name} is not in the store yet: building it from its recipe (once per host)")
            build_box(store, name)

    def _register_boxes(self, machines: Iterable[Machine]) -> None:
        boxes = {m.box for m in machines if m.box}
        for box in boxes:
            self.context.store.register_user(box, self.lab.id, self.lab.root)

    # -- halt / destroy ---------------------------------------------------------------------------

    def halt(self, machines: Sequence[Machine], timeout: float) -> list[Outcome]:
        def stop(machine: Machine) -> str:
            if self.state_of(machine) in (MachineState.NOT_CREATED, MachineState.STOPPED):
                return "stopped"
            self.driver(machine.kind).stop(machine, timeout)
            return "stopped"

        return self._parallel(machines, stop)

    def destroy(self, machines: Sequence[Machine]) -> list[Outcome]:
        def remove(machine: Machine) -> str:
            self.driver(machine.kind).destroy(machine)
            self.context.state.forget_machine(machine.name)
            return "destroyed"

        whole_lab = len(machines) == len(self.lab.machines)
        targets = [*machines, *self._orphans()] if whole_lab else list(machines)
        outcomes = self._parallel(targets, remove)
        if whole_lab and not any(o.error for o in outcomes):
            self._destroy_lab_wide()
        return outcomes

    def _orphans(self) -> list[Machine]:
        """Machines still recorded in state but gone from the labfile: destroy removes them too."""
        names = {m.name for m in self.lab.machines}
        orphans = []
        for name, record in self.context.state.machines().items():
            if name not in names and record.get("kind") in {k.value for k in Kind}:
                orphans.append(
                    Machine(
                        name=name,
                        kind=Kind(record["kind"]),
                        box=record.get("box"),
                        cpus=1,
                        memory=512 * 1024**2,
                    )
                )
        return orphans

    def _destroy_lab_wide(self) -> None:
        """What belongs to the lab rather than to one machine: networks, data dir, state."""
        from labctl import network, state

        recorded = self._recorded_uris()
        network.remove_networks(self.lab, recorded)
        self._remove_remote_volumes(recorded)
        for box in {m.box for m in self.lab.machines if m.box}:
            self.context.store.unregister_user(box, self.lab.id)
        self.context.remove(self.context.data_dir, ignore_errors=True)
        state.release_id(self.lab)
        # Last: with .labctl/ goes the lock file, and another labctl may take a new one at once.
        self.context.remove(self.context.state.dir, ignore_errors=True)

    def _recorded_uris(self) -> list[str]:
        """libvirt URIs recorded for machines (also ones the labfile no longer names)."""
        records = self.context.state.machines().values()
        return sorted({str(r["libvirt_uri"]) for r in records if r.get("libvirt_uri")})

    def _remove_remote_volumes(self, recorded: Iterable[str]) -> None:
        """The lab's volumes in labctl's pool on remote libvirt hosts (per-machine ones are gone
        already unless a machine vanished from labfile and state alike)."""
        from labctl import placement
        from labctl.drivers.vm import volumes
        from labctl.libvirt_util import connect

        for uri in placement.uris(self.lab, recorded):
            if placement.is_remote(uri) and (pool := volumes.existing_pool(connect(uri))) is not None:
                volumes.remove(pool, f"{self.lab.id}.")

    # -- shared -----------------------------------------------------------------------------------

    def _parallel(self, machines: Sequence[Machine], action: Callable[[Machine], str]) -> list[Outcome]:
        if not machines:
            return []
        workers = min(MAX_WORKERS, len(machines))
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="labctl") as pool:
            futures = [pool.submit(self._timed, machine, action) for machine in machines]
            try:
                return [f.result() for f in futures]
            except KeyboardInterrupt:
                _finish_after_interrupt(pool, futures)
                raise

    @staticmethod
    def _timed(machine: Machine, action: Callable[[Machine], str]) -> Outcome:
        started = time.monotonic()
        try:
            verb = action(machine)
        except LabctlError as exc:
            console.traceback_of(exc)
            console.error(f"{machine.name}: {exc.message}", exc.hint)
            return Outcome(machine.name, "failed", time.monotonic() - started, exc)
        except Exception as exc:
            error = DriverError(f"{type(exc).__name__}: {exc}", "run again with --debug for the traceback")
            error.__cause__ = exc
            console.traceback_of(exc)
            console.error(f"{machine.name}: {error.message}", error.hint)
            return Outcome(machine.name, "failed", time.monotonic() - started, error)
        elapsed = time.monotonic() - started
        console.info(f"{machine.name}: {verb} ({elapsed:.1f} s)")
        return Outcome(machine.name, verb, elapsed)


def _unfinished(status: object) -> str:
    if status == "creating":
        return "an earlier up did not finish creating it"
    if status == "starting":
        return "an earlier up did not finish starting it"
    return "it exists but labctl has no record of it being ready"


def _finish_after_interrupt(
    pool: concurrent.futures.ThreadPoolExecutor, futures: Sequence[concurrent.futures.Future[Outcome]]
) -> None:
    """Ctrl-C: machines not begun are not begun; the ones being worked on are finished, since
    a half-made machine helps nobody. A second Ctrl-C stops at once (as SIGKILL would): the
    records say what was unfinished, and the next `up` finishes it."""
    pool.shutdown(wait=False, cancel_futures=True)
    busy = sum(1 for f in futures if f.running())
    console.warn(
        f"interrupted: finishing the {busy} machine(s) being worked on, starting no others "
        "(Ctrl-C again to stop at once; `labctl up` then finishes them, `labctl destroy` removes them)"
    )
    try:
        concurrent.futures.wait(futures)
    except KeyboardInterrupt:
        console.warn(
            "stopped: `labctl up` finishes the machines left unfinished, `labctl destroy` removes them"
        )
        os._exit(130)


def failed(outcomes: Iterable[Outcome]) -> list[Outcome]:
    return [o for o in outcomes if o.error is not None]
