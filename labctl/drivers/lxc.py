"""LXC system containers: the box's rootfs under an OverlayFS upper dir, booting systemd, reached by SSH.

Layout, all under ctx.data_dir/lxc/ (the lxcpath every lxc-* call gets with -P, so labctl's
containers never mix with the host's other ones):

    <name>/                 0700; container root's when unprivileged (no other host user enters)
    <name>/config           from templates/lxc/config.j2
    <name>/upper/           the overlay's upper dir: this machine's changes and labctl's seed files
    <name>/work/            OverlayFS's work dir (liblxc names it)
    <name>/snapshots/<tag>/ copies of upper/ (see lxc_snapshots)
    <name>/lxc.log          liblxc's warnings and errors

liblxc mounts the overlay inside the container's own mount namespace, so the host sees no mount
and nothing is copied: the box stays the one lower layer of every container.

Machines are unprivileged by default: container root is host uid U, the first of root's
subordinate ids (labctl.idmap), and the lower layer is the box's rootfs with every owner moved up
by U (labctl.box.shift), shared by every unprivileged machine of that box. `privileged: true`
maps nothing: container root is host root. Which of the two a machine is stays as it was
created: its config says (no lxc.idmap line: privileged), not the labfile of the day.
"""

from __future__ import annotations

import math
import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path

from labctl import addressing, cgroups, console, keys, netns
from labctl.box.shift import ensure_shifted
from labctl.drivers import Driver, ExecResult, LabContext, MachineState, SshTarget
from labctl.drivers.containers import (
    Phases,
    container_name,
    create_or_undo,
    resume_and_record,
    ssh_answers,
    wait_until,
)
from labctl.drivers.lxc_rootfs import ROOT, Identity, Nic, seed
from labctl.drivers.lxc_snapshots import Snapshots
from labctl.drivers.overlay import check_paths
from labctl.errors import CommandError, DriverError, HostError, MachineTimeout, UsageError
from labctl.idmap import Idmap, host_idmap, let_traverse, require_user_namespaces
from labctl.labfile.models import Kind, Machine
from labctl.paths import inside, labctl_home, own_dir
from labctl.run import run, stream, which
from labctl.seed import dns_domain, nic_plan
from labctl.templating import render

READY_TIMEOUT = 120.0  # seconds from RUNNING to sshd answering; LABCTL_READY_TIMEOUT overrides it
STATES = {"RUNNING": MachineState.RUNNING, "STOPPED": MachineState.STOPPED, "FROZEN": MachineState.PAUSED}
ENV = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C.UTF-8"]
_keys_lock = threading.Lock()  # ensure_keypair is not safe against itself in parallel threads
_IDMAP_LINE = re.compile(r"^lxc\.idmap = ([ug]) 0 (\d+) (\d+)$", re.MULTILINE)


def ready_timeout() -> float:
    """How long `up` waits for a started LXC machine to be ready: READY_TIMEOUT, or the seconds
    LABCTL_READY_TIMEOUT gives (a slow host wants more; the test suite provokes a timeout)."""
    text = os.environ.get("LABCTL_READY_TIMEOUT")
    if text is None or not text.strip():
        return READY_TIMEOUT
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and 0 < seconds <= 86400):
        raise UsageError(
            f"LABCTL_READY_TIMEOUT={text!r} is not a number of seconds",
            f"give seconds between 0 and 86400, e.g. LABCTL_READY_TIMEOUT=300, or unset it "
            f"(default {READY_TIMEOUT:g})",
        )
    return seconds


def configured_idmap(config: str) -> Idmap | None:
    """The id mapping of a written config; None when it has none (privileged)."""
    starts = {kind: int(start) for kind, start, _size in _IDMAP_LINE.findall(config)}
    return Idmap(starts["u"], starts["g"]) if "u" in starts and "g" in starts else None


class LxcDriver(Driver):
    kind = Kind.LXC

    def __init__(self, context: LabContext) -> None:
        super().__init__(context)
        self.lxcpath = context.data_dir / "lxc"

    # -- names and paths ------------------------------------------------------------------------
    def name(self, machine: Machine) -> str:
        return container_name(self.context, machine)

    def directory(self, machine: Machine) -> Path:
        return inside(self.lxcpath, self.name(machine))

    def lxc(self, program: str, machine: Machine, *args: str) -> list[str]:
        return [program, "-P", str(self.lxcpath), "-n", self.name(machine), *args]

    def nics(self, machine: Machine) -> list[Nic]:
        owner = self.name(machine)
        leases = addressing.leases_of(self.lab, machine)
        return [
            Nic(
                network=lease.network,
                host=netns.veth_name(owner, index, prefix="lcx"),
                inside=f"eth{index}",
                bridge=addressing.bridge_name(self.lab, self.lab.network(lease.network)),
                mac=lease.mac,
                address=f"{lease.ip}/{lease.prefixlen}",
                gateway=str(lease.gateway),
                default_route=bool(plan["default_route"]),
            )
            for index, (lease, plan) in enumerate(zip(leases, nic_plan(self.lab, machine), strict=True))
        ]

    # -- lifecycle ------------------------------------------------------------------------------
    def check_host(self, machines: Sequence[Machine]) -> None:
        ready_timeout()  # a bad LABCTL_READY_TIMEOUT is refused before anything is made
        for program in ("lxc-start", "lxc-attach", "lxc-info", "lxc-stop"):
            if not which(program):
                raise HostError(f"{program} not found", "install liblxc's tools: apt-get install lxc")
        if any(not m.privileged and not self._created(m) for m in machines):
            require_user_namespaces()
            host_idmap()  # root's subordinate range, or a HostError that says how to add one
        for machine in machines:  # at every up, running or not: the labfile asks for another mode
            if self._created(machine):
                self._warn_if_mismatched(machine, self.idmap(machine))

    def create(self, machine: Machine) -> None:
        create_or_undo(self, machine, self._bring_up, lambda: self._describe(machine))

    def _describe(self, machine: Machine) -> dict[str, object]:
        """What state.json records: also whether container root is host root, or which host uid."""
        ids = self.idmap(machine)
        return {
            "address": self.address(machine),
            "container": self.name(machine),
            "privileged": ids is None,
            "idmap": None if ids is None else {"uid": ids.uid, "gid": ids.gid, "size": ids.size},
        }

    def _created(self, machine: Machine) -> bool:
        return (self.directory(machine) / "config").exists()

    def idmap(self, machine: Machine) -> Idmap | None:
        """The machine's id mapping, None when privileged: what its config says once created (its
        files are owned accordingly), else what the labfile asks for with the host's range."""
        config = self.directory(machine) / "config"
        if config.exists():
            return configured_idmap(config.read_text())
        return None if machine.privileged else host_idmap()

    def _warn_if_mismatched(self, machine: Machine, ids: Idmap | None) -> None:
        if (ids is None) == machine.privileged:
            return
        fix = f"labctl destroy {machine.name} && labctl up"
        if ids is None:
            console.warn(
                f"{machine.name} runs privileged (container root is host root): it was created so, by an "
                f"older labctl or with privileged: true; to make it unprivileged: {fix}"
            )
        else:
            console.warn(
                f"{machine.name} stays unprivileged, as it was created; privileged: true needs {fix}"
            )

    def start(self, machine: Machine) -> None:
        if not (self.directory(machine) / "config").exists():
            raise DriverError(f"{machine.name} is not created", "run labctl up")
        self._bring_up(machine, Phases(self.context.progress(machine)))

    def resume(self, machine: Machine) -> None:
        resume_and_record(self, machine, self._bring_up, lambda: self._describe(machine))

    def _bring_up(self, machine: Machine, phases: Phases) -> None:
        """Each step checks what exists, so this also completes a create that was killed."""
        if self.state(machine) is MachineState.PAUSED:
            run(self.lxc("lxc-unfreeze", machine))
        if self.state(machine) is not MachineState.RUNNING:
            with phases("config"):
                self._write(machine)
            with phases("start"):
                for nic in self.nics(machine):
                    netns.require_bridge(nic.bridge, nic.network)
                run(
                    self.lxc("lxc-start", machine, "--daemon"),
                    hint=f"see {self.directory(machine) / 'lxc.log'}",
                )
        with phases("ready"):
            self._wait_ready(machine)

    def _write(self, machine: Machine) -> None:
        directory = self.directory(machine)
        ids = self.idmap(machine)
        lower = self._lower(machine, ids)
        upper = directory / "upper"
        check_paths(lower, upper)
        # upper/ holds what container root planted: no other host user may reach it.
        self.context.prepare_data_dir("lxc")
        own_dir(directory, 0o700)
        (directory / "work").mkdir(mode=0o700, exist_ok=True)
        if not upper.exists():  # the container's / takes upper's mode (a shifted lower's is 0700)
            upper.mkdir()
            upper.chmod(0o755)
        owner = ROOT if ids is None else ids.shifted(0, 0)
        if ids is not None:
            self._hand_to_container_root(directory, owner)
        seed(lower, upper, self._identity(machine), owner)
        (directory / "config").write_text(self.config_text(machine, lower, upper, ids))

    def _hand_to_container_root(self, directory: Path, owner: tuple[int, int]) -> None:
        """liblxc mounts the overlay as container root, from inside its user namespace: it must
        reach the container dir (search only on the way) and own upper/ and work/ (copy-up writes
        there as the mounter). The container dir is its own, still 0700: no other host user gets in."""
        let_traverse(labctl_home(), self.lxcpath)
        for path in (directory, directory / "upper", directory / "work"):
            os.chown(path, *owner, follow_symlinks=False)

    def config_text(self, machine: Machine, lower: Path, upper: Path, ids: Idmap | None) -> str:
        return render(
            "lxc/config.j2",
            machine=machine.name,
            lab_id=self.lab.id,
            hostname=machine.name,
            idmap=ids,
            lower=str(lower),
            upper=str(upper),
            log=str(upper.parent / "lxc.log"),
            limits=cgroups.lxc_limits(machine.cpus, machine.memory),
            nics=self.nics(machine),
        )

    def _lower(self, machine: Machine, ids: Idmap | None) -> Path:
        """The box's rootfs; for an unprivileged machine its copy with owners shifted by ids."""
        if machine.box is None:
            raise DriverError(f"{machine.name} names no box", "lxc machines need a box: add `box: debian-12`")
        box = self.context.store.get(machine.box)
        if box.rootfs is None:
            raise DriverError(
                f"box {machine.box} has no rootfs for containers", f"labctl box build {machine.box}"
            )
        return box.rootfs if ids is None else ensure_shifted(self.context.store, box, ids)

    def _identity(self, machine: Machine) -> Identity:
        with _keys_lock:
            lab_key = keys.ensure_keypair(self.context.key_path, f"labctl-{self.lab.id}")
            host_key = keys.host_key(self.context.state.ensure_dir(), machine.name)
        address = self.address(machine)
        if address is not None:
            with _keys_lock:
                keys.record_host_key(self.context.known_hosts, address, 22, host_key.public_text())
        return Identity(
            hostname=machine.name,
            domain=dns_domain(self.lab),
            nics=tuple(self.nics(machine)),
            authorized_key=lab_key.public_text(),
            host_private=host_key.private_text(),
            host_public=host_key.public_text(),
        )

    def _wait_ready(self, machine: Machine) -> None:
        """RUNNING, then sshd answering on the lab address (or systemd up, without a network)."""
        run(self.lxc("lxc-wait", machine, "--state", "RUNNING", "--timeout", "30"))
        timeout = ready_timeout()
        address = self.address(machine)
        if address is not None:
            ready = wait_until(lambda: ssh_answers(address), timeout, interval=0.1)
            what = f"sshd did not answer at {address}:22"
        else:
            argv = ["systemctl", "is-system-running", "--wait"]
            try:
                ready = self.run(machine, argv, timeout=timeout).stdout.strip() in ("running", "degraded")
            except CommandError as exc:
                if exc.returncode != -1:  # -1: it timed out (labctl.run)
                    raise
                ready = False
            what = "systemd did not finish booting"
        if not ready:
            raise MachineTimeout(
                f"phase 'ready' did not complete: {what} within {timeout:g} s",
                "run labctl up again; a slow host may need longer: "
                f"LABCTL_READY_TIMEOUT=SECONDS labctl up (default {READY_TIMEOUT:g})",
            )

    def stop(self, machine: Machine, timeout: float = 60.0) -> None:
        if self.state(machine) in (MachineState.RUNNING, MachineState.PAUSED):
            run(self.lxc("lxc-stop", machine, "--timeout", str(int(max(timeout, 1)))))

    def destroy(self, machine: Machine) -> None:
        if self.state(machine) in (MachineState.RUNNING, MachineState.PAUSED):
            run(self.lxc("lxc-stop", machine, "--kill"))
        for nic in self.nics(machine):  # liblxc removes its veths; a crash of lxc-start may not
            netns.delete_link(nic.host, nic.bridge)
        directory = self.directory(machine)
        self.context.remove(directory)

    # -- inspection and access ------------------------------------------------------------------
    def state(self, machine: Machine) -> MachineState:
        if not (self.directory(machine) / "config").exists():
            return MachineState.NOT_CREATED
        result = run(self.lxc("lxc-info", machine, "--state", "--no-humanize"), check=False)
        return STATES.get(result.stdout.strip(), MachineState.UNKNOWN)

    def init_pid(self, machine: Machine) -> int | None:
        """The container's init as the host sees it (bench reads its cgroup), None when stopped."""
        out = run(self.lxc("lxc-info", machine, "--pid", "--no-humanize"), check=False, timeout=30).stdout
        return int(out.strip()) if out.strip().isdigit() else None

    def address(self, machine: Machine) -> str | None:
        nics = self.nics(machine)
        return nics[0].address.split("/")[0] if nics else None

    def ssh_target(self, machine: Machine) -> SshTarget | None:
        address = self.address(machine)
        return SshTarget(address, 22, "root", self.context.key_path) if address else None

    def attach_argv(self, machine: Machine, argv: Sequence[str]) -> list[str]:
        env = [arg for item in ENV for arg in ("--set-var", item)]
        return self.lxc("lxc-attach", machine, "--clear-env", *env, "--", *argv)

    def exec(self, machine: Machine, argv: Sequence[str], *, tty: bool = False) -> int:
        self._require_running(machine)
        return stream(self.attach_argv(machine, argv))

    def run(
        self,
        machine: Machine,
        argv: Sequence[str],
        *,
        input: bytes | None = None,
        timeout: float | None = None,
    ) -> ExecResult:
        self._require_running(machine)
        result = run(self.attach_argv(machine, argv), check=False, input=input, timeout=timeout)
        return ExecResult(result.returncode, result.stdout, result.stderr)

    def _require_running(self, machine: Machine) -> None:
        if self.state(machine) is not MachineState.RUNNING:
            raise DriverError(f"{machine.name} is not running", "start it with: labctl up")

    # -- snapshots: copies of the upper dir ------------------------------------------------------
    def snapshots(self, machine: Machine) -> Snapshots:
        return Snapshots(self.directory(machine))

    def snapshot_save(self, machine: Machine, tag: str) -> None:
        running = self.state(machine) is MachineState.RUNNING
        if running:  # frozen, the upper dir does not change while it is copied
            run(self.lxc("lxc-freeze", machine))
        try:
            self.snapshots(machine).save(tag)
        finally:
            if running:
                run(self.lxc("lxc-unfreeze", machine))

    def snapshot_restore(self, machine: Machine, tag: str) -> None:
        snapshots = self.snapshots(machine)
        snapshots.require(tag)
        running = self.state(machine) in (MachineState.RUNNING, MachineState.PAUSED)
        if running:  # the overlay must not be mounted while its upper dir is swapped
            self.stop(machine)
        snapshots.restore(tag)
        if running:
            self._bring_up(machine, Phases())

    def snapshot_list(self, machine: Machine) -> list[str]:
        return self.snapshots(machine).tags()

    def snapshot_delete(self, machine: Machine, tag: str) -> None:
        self.snapshots(machine).delete(tag)
