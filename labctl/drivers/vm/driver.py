"""The vm kind: KVM/QEMU guests through libvirt, reached over SSH (paramiko)."""

from __future__ import annotations

import shutil
import sys
import threading
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from labctl import accel, addressing, console, keys, seed, sshjump
from labctl import ssh as sshlib
from labctl.drivers import Driver, ExecResult, LabContext, MachineState, SshTarget
from labctl.drivers.vm import disk, ready
from labctl.drivers.vm.domain import BootFiles, GuestPaths, MachineFiles, boot_files, domain_name, render_xml
from labctl.drivers.vm.terminal import raw_terminal
from labctl.errors import DriverError, HostError
from labctl.labfile.models import Kind, Machine
from labctl.libvirt_util import connect, libvirt_errors, lookup_domain, owned_by
from labctl.paths import inside
from labctl.run import which
from labctl.sshjump import JumpHost

USER = "root"


class VmDriver(Driver):
    kind = Kind.VM

    def __init__(self, context: LabContext) -> None:
        super().__init__(context)
        self._sessions: dict[tuple[str, int], sshlib.Session] = {}
        self._sessions_lock = threading.Lock()

    # -- host and helpers -------------------------------------------------------------------------

    def check_host(self, machines: Sequence[Machine]) -> None:
        for program in ("qemu-img", "genisoimage"):
            if which(program) is None:
                from labctl.run import missing_program

                raise missing_program(program)
        for machine in machines:
            if not machine.networks:
                raise HostError(
                    f"vm {machine.name} has no lab network, so labctl cannot reach it over SSH",
                    "attach it to a network in the labfile (networks: [...])",
                )
            uri = self.lab.uri_for(machine)
            sshjump.for_uri(uri)  # a remote host must be reachable over SSH: refuse tcp/tls early
            connect(uri)
            accel.choose(machine.accel, uri)

    def _conn(self, machine: Machine) -> Any:
        return connect(self.lab.uri_for(machine))

    def _domain(self, machine: Machine) -> Any | None:
        """The machine's domain, or None; refuses a same-named domain labctl did not make."""
        dom = lookup_domain(self._conn(machine), domain_name(self.lab, machine))
        if dom is not None and not owned_by(dom, self.lab.id):
            raise DriverError(
                f"libvirt domain {dom.name()} exists but does not belong to lab {self.lab.id}; labctl leaves it alone",
                "rename or remove that domain, or rename the machine",
            )
        return dom

    def _require(self, machine: Machine) -> Any:
        dom = self._domain(machine)
        if dom is None:
            raise DriverError(f"vm {machine.name} is not created", "run `labctl up` first")
        return dom

    def _files(self, machine: Machine) -> MachineFiles:
        return MachineFiles.of(self.context.data_dir, machine)

    def _jump(self, machine: Machine) -> JumpHost | None:
        """The SSH server in front of the machine's libvirt host; None when that is this host."""
        return sshjump.for_uri(self.lab.uri_for(machine))

    def _console_log(self, machine: Machine) -> str:
        """Where the serial log is, said so that the user can find it (host:path when remote)."""
        jump = self._jump(machine)
        if jump is None:
            return str(self._files(machine).console_log)
        from labctl.drivers.vm import volumes

        name = volumes.MachineVolumes(self.lab.id, machine.name).console_log
        return f"{jump.alias}:{volumes.POOL_PATH}/{name}"

    def _ip(self, machine: Machine) -> str:
        leases = addressing.leases_of(self.lab, machine)
        if not leases:
            raise DriverError(f"vm {machine.name} has no lab network address")
        return str(leases[0].ip)

    def _record(self, machine: Machine, **fields: Any) -> None:
        self.context.state.update_machine(machine.name, **fields)

    def _endpoint(self, machine: Machine) -> sshlib.Endpoint:
        return sshlib.Endpoint(
            self._ip(machine), 22, USER, self.context.key_path, self.context.known_hosts, self._jump(machine)
        )

    # -- lifecycle --------------------------------------------------------------------------------

    def create(self, machine: Machine) -> None:
        uri = self.lab.uri_for(machine)
        choice = accel.choose(machine.accel, uri)
        accel.notice_once(choice, uri)
        files = self._files(machine)
        # A failed create removes the VM's files; its console log is kept in .labctl/ first.
        phases = ready.Phases(machine.name, str(self._kept_log(machine)), self.context.progress(machine))
        if self._domain(machine) is not None:
            raise DriverError(f"vm {machine.name} already exists", "use `labctl up` to start it")
        try:
            with phases.timed("define"):
                dom = self._define(machine, choice.engine, files)
            self._record(machine, **self._describe(machine, dom))
            with phases.timed("boot"), libvirt_errors(f"cannot start vm {machine.name}"):
                dom.create()
            self._wait_ready(machine, dom, phases)
        except BaseException:
            self._keep_console_log(machine)
            self._cleanup_failed(machine)
            raise
        self._record(machine, phases=phases.seconds)

    def _kept_log(self, machine: Machine) -> Path:
        return inside(self.context.state.dir, "logs", f"{machine.name}-console.log")

    def _keep_console_log(self, machine: Machine) -> None:
        """Copy the serial log of a failed create to .labctl/logs/ (best effort: never hides the error)."""
        from labctl.errors import LabctlError

        kept = self._kept_log(machine)
        try:
            kept.parent.mkdir(parents=True, exist_ok=True)
            if self._jump(machine) is None:
                live = self._files(machine).console_log
                if live.exists():
                    shutil.copyfile(live, kept)
            else:
                from labctl.drivers.vm import volumes

                pool = volumes.existing_pool(self._conn(machine))
                name = volumes.MachineVolumes(self.lab.id, machine.name).console_log
                if pool is not None:
                    volumes.download(self._conn(machine), pool, name, kept)
        except (OSError, LabctlError) as exc:
            console.warn(f"vm {machine.name}: could not keep its console log: {exc}")

    def _cleanup_failed(self, machine: Machine) -> None:
        """Remove what a failed create made; a cleanup failure must not hide the real error."""
        from labctl.errors import LabctlError

        try:
            self._remove(machine)
        except LabctlError as exc:
            console.warn(f"vm {machine.name}: could not clean up after the failure: {exc.message}")

    def _define(self, machine: Machine, engine: accel.Engine, files: MachineFiles) -> Any:
        if machine.box is None:
            raise DriverError(f"vm {machine.name} has no box", "set box: in the labfile")
        box = self.context.store.get(machine.box)
        boot = boot_files(box)
        files.prepare()
        seed.build(seed.render(self.lab, machine, self._seed_keys(machine)), files.seed)
        if self._jump(machine) is None:
            disk.create_overlay(boot.disk, files.overlay, machine.disk)
            paths = files.paths
        else:
            boot, paths = self._place_remotely(machine, box, boot, files)
        xml = render_xml(self.lab, machine, engine, boot, paths)
        with libvirt_errors(f"cannot define vm {machine.name}"):
            return self._conn(machine).defineXML(xml)

    def _place_remotely(
        self, machine: Machine, box: Any, boot: BootFiles, files: MachineFiles
    ) -> tuple[BootFiles, GuestPaths]:
        """The box (uploaded once), overlay and seed as volumes on the machine's libvirt host."""
        from labctl.drivers.vm import volumes

        conn = self._conn(machine)
        pool = volumes.ensure_pool(conn)
        remote_boot = volumes.box_files(conn, pool, box, boot)
        size = disk.overlay_size(boot.disk, machine.disk)
        names = volumes.MachineVolumes(self.lab.id, machine.name)
        return remote_boot, volumes.machine_paths(conn, pool, names, str(remote_boot.disk), size, files.seed)

    def _seed_keys(self, machine: Machine) -> seed.SeedKeys:
        client = keys.ensure_keypair(self.context.key_path, f"labctl-{self.lab.id}")
        host = keys.host_key(self.context.state.dir, machine.name)
        # Known before the first connection: paramiko rejects anything else.
        keys.record_host_key(self.context.known_hosts, self._ip(machine), 22, host.public_text())
        return seed.SeedKeys(client.public_text(), host.private_text(), host.public_text())

    def _wait_ready(self, machine: Machine, dom: Any, phases: ready.Phases) -> None:
        endpoint = self._endpoint(machine)
        with phases.timed("address"):
            ready.wait_address(endpoint, lambda: bool(dom.isActive()), phases.console_log)
        with phases.timed("ssh"):
            session = sshlib.connect(endpoint, timeout=ready.TIMEOUTS["ssh"])
        with session, phases.timed("first_boot"):
            ready.wait_first_boot(session)

    def _describe(self, machine: Machine, dom: Any) -> dict[str, Any]:
        """What state.json records of a defined VM; the engine is read back from its domain."""
        with libvirt_errors(f"cannot read the definition of vm {machine.name}"):
            domain_type = ET.fromstring(dom.XMLDesc()).get("type")  # noqa: S314 - from libvirtd
        return {
            "kind": "vm",
            "accel": "kvm" if domain_type == "kvm" else "tcg",
            "domain": dom.name(),
            "libvirt_uri": self.lab.uri_for(machine),
            "address": self._ip(machine),
            "console_log": self._console_log(machine),
        }

    def start(self, machine: Machine) -> None:
        self._start(machine, self._require(machine))

    def resume(self, machine: Machine) -> None:
        dom = self._require(machine)
        self._record(machine, **self._describe(machine, dom))
        self._start(machine, dom)

    def _start(self, machine: Machine, dom: Any) -> None:
        import libvirt

        phases = ready.Phases(machine.name, self._console_log(machine), self.context.progress(machine))
        with phases.timed("boot"), libvirt_errors(f"cannot start vm {machine.name}"):
            if dom.state()[0] == libvirt.VIR_DOMAIN_PAUSED:
                dom.resume()
            elif not dom.isActive():
                dom.create()
        self._wait_ready(machine, dom, phases)
        self._record(machine, last_start_phases=phases.seconds)

    def stop(self, machine: Machine, timeout: float = 60.0) -> None:
        import time

        dom = self._domain(machine)
        self._drop_sessions(machine)
        if dom is None or not dom.isActive():
            return
        with libvirt_errors(f"cannot shut down vm {machine.name}"):
            dom.shutdown()  # ACPI power button: the guest shuts down cleanly
            deadline = time.monotonic() + timeout
            while dom.isActive() and time.monotonic() < deadline:
                time.sleep(0.5)
            if dom.isActive():
                console.warn(f"vm {machine.name} did not shut down within {timeout:.0f} s; forcing it off")
                dom.destroy()

    def destroy(self, machine: Machine) -> None:
        self._drop_sessions(machine)
        self._remove(machine)
        self.context.remove(self._kept_log(machine))

    def _remove(self, machine: Machine) -> None:
        """Domain (with snapshot metadata and nvram) and the machine's files; idempotent."""
        import libvirt

        dom = self._domain(machine)
        if dom is not None:
            flags = (
                libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
                | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
                | libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                | libvirt.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA
            )
            with libvirt_errors(f"cannot remove vm {machine.name}"):
                if dom.isActive():
                    dom.destroy()
                dom.undefineFlags(flags)
        if self._jump(machine) is not None:
            from labctl.drivers.vm import volumes

            pool = volumes.existing_pool(self._conn(machine))
            if pool is not None:
                volumes.remove(pool, volumes.MachineVolumes(self.lab.id, machine.name).prefix)
        self.context.remove(self._files(machine).dir, ignore_errors=True)

    # -- inspection -------------------------------------------------------------------------------

    def state(self, machine: Machine) -> MachineState:
        import libvirt

        dom = self._domain(machine)
        if dom is None:
            return MachineState.NOT_CREATED
        with libvirt_errors(f"cannot read the state of vm {machine.name}"):
            code = dom.state()[0]
        return {
            libvirt.VIR_DOMAIN_RUNNING: MachineState.RUNNING,
            libvirt.VIR_DOMAIN_BLOCKED: MachineState.RUNNING,
            libvirt.VIR_DOMAIN_PAUSED: MachineState.PAUSED,
            libvirt.VIR_DOMAIN_PMSUSPENDED: MachineState.PAUSED,
            libvirt.VIR_DOMAIN_SHUTDOWN: MachineState.RUNNING,
            libvirt.VIR_DOMAIN_SHUTOFF: MachineState.STOPPED,
            libvirt.VIR_DOMAIN_CRASHED: MachineState.STOPPED,
        }.get(code, MachineState.UNKNOWN)

    def qemu_rss(self, machine: Machine) -> int | None:
        """Resident memory of the machine's QEMU process in bytes (libvirt reads it on its host)."""
        dom = self._domain(machine)
        if dom is None or not dom.isActive():
            return None
        with libvirt_errors(f"cannot read the memory use of vm {machine.name}"):
            stats = dom.memoryStats()
        return int(stats["rss"]) * 1024 if "rss" in stats else None

    def address(self, machine: Machine) -> str | None:
        if not machine.networks or self._domain(machine) is None:
            return None
        return self._ip(machine)

    def ssh_target(self, machine: Machine) -> SshTarget | None:
        return SshTarget(self._ip(machine), 22, USER, self.context.key_path, self._jump(machine))

    def console_argv(self, machine: Machine) -> list[str]:
        """`labctl console`: the serial console through virsh (leave with Ctrl+])."""
        return ["virsh", "-c", self.lab.uri_for(machine), "console", domain_name(self.lab, machine)]

    # -- commands ---------------------------------------------------------------------------------

    def _session(self, machine: Machine) -> sshlib.Session:
        """A cached SSH session per machine and thread; reconnects when the old one died."""
        key = (machine.name, threading.get_ident())
        with self._sessions_lock:
            session = self._sessions.get(key)
        transport = session.client.get_transport() if session else None
        if session is not None and transport is not None and transport.is_active():
            return session
        if self.state(machine) is not MachineState.RUNNING:
            raise DriverError(f"vm {machine.name} is not running", f"start it: labctl up {machine.name}")
        session = sshlib.connect(self._endpoint(machine), timeout=30.0)
        with self._sessions_lock:
            self._sessions[key] = session
        return session

    def _drop_sessions(self, machine: Machine) -> None:
        with self._sessions_lock:
            stale = [k for k in self._sessions if k[0] == machine.name]
            sessions = [self._sessions.pop(k) for k in stale]
        for session in sessions:
            session.close()

    def exec(self, machine: Machine, argv: Sequence[str], *, tty: bool = False) -> int:
        session = self._session(machine)
        if tty:
            with raw_terminal():
                return session.exec(argv, stdin=sys.stdin.buffer, tty=True)
        return session.exec(argv, stdin=sys.stdin.buffer)

    def run(
        self,
        machine: Machine,
        argv: Sequence[str],
        *,
        input: bytes | None = None,
        timeout: float | None = None,
    ) -> ExecResult:
        try:
            output = self._session(machine).run(argv, input=input, timeout=timeout)
        except sshlib.StaleSession:
            # The command never started: retry once on a fresh connection.
            self._drop_sessions(machine)
            output = self._session(machine).run(argv, input=input, timeout=timeout)
        return ExecResult(output.returncode, output.stdout, output.stderr)

    # -- snapshots --------------------------------------------------------------------------------

    def snapshot_save(self, machine: Machine, tag: str) -> None:
        from labctl.drivers.vm import snapshots

        snapshots.save(self._require(machine), machine, tag)

    def snapshot_restore(self, machine: Machine, tag: str) -> None:
        from labctl.drivers.vm import snapshots

        self._drop_sessions(machine)
        dom = self._require(machine)
        snapshots.restore(dom, machine, tag)
        if dom.isActive():
            # The guest resumes where it was; wait until SSH answers again before returning.
            sshlib.connect(self._endpoint(machine), timeout=ready.TIMEOUTS["ssh"]).close()

    def snapshot_list(self, machine: Machine) -> list[str]:
        from labctl.drivers.vm import snapshots

        dom = self._domain(machine)
        return [] if dom is None else snapshots.names(dom)

    def snapshot_delete(self, machine: Machine, tag: str) -> None:
        from labctl.drivers.vm import snapshots

        snapshots.delete(self._require(machine), machine, tag)
