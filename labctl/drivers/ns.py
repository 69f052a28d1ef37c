"""Namespace containers: one process (machine.command) under runc, in exactly the declared namespaces.

Layout of one machine, all under ctx.data_dir/ns/<machine>/:

    config.json     from templates/oci/config.json.j2
    rootfs/         OverlayFS of the box's rootfs + upper/ (box-less: see labctl.drivers.host_view)
    upper/ work/    the overlay's writable layer and OverlayFS's scratch dir
    etc/            hostname, hosts and resolv.conf, bound read-only into the container
    console.log     the container's stdout/stderr and runc's own errors

With `net`, runc makes the netns; labctl names it labctl-<lab>-<machine> and plumbs it between
`runc create` and `runc start` (see labctl.netns).
Snapshots: ns machines have none (their state is one process): the Driver base class raises a
UsageError that says so.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

from labctl import addressing, netns
from labctl.drivers import Driver, ExecResult, LabContext, MachineState, host_view
from labctl.drivers.containers import (
    Phases,
    container_name,
    create_or_undo,
    resume_and_record,
    wait_until,
)
from labctl.drivers.oci import DEFAULT_COMMAND, BundleSpec, config
from labctl.drivers.overlay import is_mounted, mount_overlay, owned_by, unmount
from labctl.drivers.runtime import Runtime, runtime_name
from labctl.errors import DriverError, HostError
from labctl.idmap import Idmap, ns_idmap, require_user_namespaces
from labctl.labfile.models import Kind, Machine, Namespace
from labctl.paths import inside, own_dir
from labctl.run import DEVNULL, PIPE, STDOUT, run, start, which
from labctl.seed import dns_domain, nic_plan

__all__ = ["NsDriver", "runtime_name"]
STATUS = {"running": MachineState.RUNNING, "paused": MachineState.PAUSED}


class NsDriver(Driver):
    kind = Kind.NS

    def __init__(self, context: LabContext) -> None:
        super().__init__(context)
        self.runtime = Runtime(context.data_dir / "runc")

    # -- paths and names ------------------------------------------------------------------------
    def bundle(self, machine: Machine) -> Path:
        return inside(self.context.data_dir, "ns", machine.name)

    def container(self, machine: Machine) -> str:
        return container_name(self.context, machine)

    def links(self, machine: Machine) -> list[netns.Link]:
        if Namespace.NET not in machine.namespaces:
            return []
        owner = self.container(machine)
        leases = addressing.leases_of(self.lab, machine)
        nics = nic_plan(self.lab, machine)
        return [
            netns.Link(
                host=netns.veth_name(owner, index),
                inside=f"eth{index}",
                bridge=addressing.bridge_name(self.lab, self.lab.network(lease.network)),
                lease=lease,
                default_route=nic["default_route"],
            )
            for index, (lease, nic) in enumerate(zip(leases, nics, strict=True))
        ]

    # -- lifecycle ------------------------------------------------------------------------------
    def check_host(self, machines: Sequence[Machine]) -> None:
        if not which(runtime_name()):
            raise HostError(f"{runtime_name()} not found", "install it with: apt-get install runc")
        if any(Namespace.USER in m.namespaces for m in machines):
            require_user_namespaces()
            ns_idmap()  # root's subordinate range, or a HostError that says how to add one

    def create(self, machine: Machine) -> None:
        create_or_undo(self, machine, self._bring_up, lambda: self._describe(machine))

    def _describe(self, machine: Machine) -> dict[str, object]:
        return {
            "address": self.address(machine),
            "container": self.container(machine),
            "runtime": runtime_name(),
        }

    def start(self, machine: Machine) -> None:
        if self.state(machine) is MachineState.NOT_CREATED:
            raise DriverError(f"{machine.name} is not created", "run labctl up")
        self._bring_up(machine, Phases(self.context.progress(machine)))

    def resume(self, machine: Machine) -> None:
        resume_and_record(self, machine, self._bring_up, lambda: self._describe(machine))

    def _bring_up(self, machine: Machine, phases: Phases) -> None:
        """Every step checks what exists first, so this also finishes a create that was killed."""
        container = self.container(machine)
        if self.runtime.status(container) == "running":
            return
        with phases("rootfs"):
            self._prepare_rootfs(machine)
        with phases("bundle"):
            self._write_bundle(machine)
        bundle = self.bundle(machine)
        with phases("create"):
            self.runtime.delete(container)  # a created/stopped leftover of an earlier attempt
            pid = self.runtime.create(container, bundle, bundle / "console.log")
        with phases("network"):
            self._plug(machine, pid)
        with phases("start"):
            self.runtime.start(container)
            if not wait_until(lambda: self.runtime.status(container) == "running", 10):
                raise DriverError(
                    f"{machine.name} exited right after starting", f"see {bundle / 'console.log'}"
                )

    def _prepare_rootfs(self, machine: Machine) -> None:
        bundle = self.bundle(machine)
        rootfs = bundle / "rootfs"
        self._private_bundle(machine)
        if machine.box is None:
            if is_mounted(rootfs):  # earlier labctl bound the host's whole / here
                unmount(rootfs)
            host_view.build_skeleton(rootfs, host_view.survey())
            return
        lower = self._box_rootfs(machine.box)
        upper = bundle / "upper"
        mount_overlay(lower, upper, bundle / "work", rootfs)
        if Namespace.USER in machine.namespaces:
            # Container root is a subordinate uid of root's (labctl.idmap, the ns block): it owns the overlay's top
            # directory, box files keep host ownership and show up as nobody (runc 1.1 has no
            # idmapped mounts).
            ids = ns_idmap()
            owned_by(upper, ids.uid, ids.gid)

    def _private_bundle(self, machine: Machine) -> None:
        """The bundle holds upper/, whose files container root owns (setuid ones too): 0700, so
        no other host user reaches them. With a user namespace runc binds the rootfs as the
        mapped root (root's subordinate ids, labctl.idmap), so that one group, and only it, may
        pass: 0710."""
        self.context.prepare_data_dir("ns")
        ids = self._idmap(machine)
        if ids is not None:
            own_dir(self.bundle(machine), 0o710, group=ids.gid)
        else:
            own_dir(self.bundle(machine), 0o700)

    def _idmap(self, machine: Machine) -> Idmap | None:
        return ns_idmap() if Namespace.USER in machine.namespaces else None

    def _box_rootfs(self, name: str) -> Path:
        rootfs = self.context.store.get(name).rootfs
        if rootfs is None:
            raise DriverError(
                f"box {name} has no rootfs for containers", f"rebuild it: labctl box build {name}"
            )
        return rootfs

    def _plug(self, machine: Machine, pid: int) -> None:
        if Namespace.NET not in machine.namespaces:
            return
        name = self.container(machine)
        netns.attach_netns(name, pid)
        netns.plug(name, self.links(machine))

    def _write_bundle(self, machine: Machine) -> None:
        bundle = self.bundle(machine)
        etc = bundle / "etc"
        etc.mkdir(mode=0o755, exist_ok=True)
        for name, text in self._etc_files(machine).items():
            (etc / name).write_text(text)
            (etc / name).chmod(0o644)
        view = host_view.survey() if machine.box is None else None
        spec = BundleSpec(self.container(machine), machine, view, str(etc), self._idmap(machine))
        (bundle / "config.json").write_text(json.dumps(config(spec), indent=2) + "\n")

    def _etc_files(self, machine: Machine) -> dict[str, str]:
        links = self.links(machine)
        hosts = "127.0.0.1\tlocalhost\n::1\tlocalhost\n"
        hosts += "".join(f"{link.lease.ip}\t{machine.name}\n" for link in links[:1])
        resolv = f"nameserver {links[0].lease.gateway}\nsearch {dns_domain(self.lab)}\n" if links else ""
        return {"hostname": machine.name + "\n", "hosts": hosts, "resolv.conf": resolv}

    def stop(self, machine: Machine, timeout: float = 60.0) -> None:
        """TERM, then KILL after timeout; the default `sleep infinity` has nothing to save: KILL."""
        container = self.container(machine)
        if self.runtime.status(container) in ("running", "paused"):
            default = tuple(machine.command or DEFAULT_COMMAND) == DEFAULT_COMMAND
            if not default:
                self.runtime.kill(container, "TERM")
            if default or not wait_until(lambda: self.runtime.status(container) != "running", timeout):
                self.runtime.kill(container, "KILL")
                wait_until(lambda: self.runtime.status(container) != "running", 10)
        self.runtime.delete(container)  # frees the cgroup; bundle and overlay stay for `up`
        self._unplug(machine)

    def _unplug(self, machine: Machine) -> None:
        netns.unplug(self.links(machine))
        netns.delete_netns(self.container(machine))

    def destroy(self, machine: Machine) -> None:
        container = self.container(machine)
        self.runtime.delete(container)
        self._unplug(machine)
        bundle = self.bundle(machine)
        unmount(bundle / "rootfs")
        self.context.remove(bundle)

    # -- inspection -----------------------------------------------------------------------------
    def state(self, machine: Machine) -> MachineState:
        status = self.runtime.status(self.container(machine))
        if status in STATUS:
            return STATUS[status]
        if (self.bundle(machine) / "config.json").exists():
            return MachineState.STOPPED
        return MachineState.NOT_CREATED

    def address(self, machine: Machine) -> str | None:
        links = self.links(machine)
        return str(links[0].lease.ip) if links else None

    def exec(self, machine: Machine, argv: Sequence[str], *, tty: bool = False) -> int:
        self._require_running(machine)
        return self.runtime.exec(self.container(machine), argv, tty)

    def run(
        self,
        machine: Machine,
        argv: Sequence[str],
        *,
        input: bytes | None = None,
        timeout: float | None = None,
    ) -> ExecResult:
        self._require_running(machine)
        argv_ = self.runtime.exec_argv(self.container(machine), argv, tty=False)
        result = run(argv_, check=False, input=input, timeout=timeout)
        return ExecResult(result.returncode, result.stdout, result.stderr)

    def run_streaming(
        self,
        machine: Machine,
        argv: Sequence[str],
        on_line: Callable[[str], None],
        *,
        input: bytes | None = None,
        timeout: float | None = None,
    ) -> int:
        """Each line of output as it comes (provisioning shows it live), stdout and stderr merged."""
        self._require_running(machine)
        argv_ = self.runtime.exec_argv(self.container(machine), argv, tty=False)
        proc = start(argv_, stdin=DEVNULL if input is None else PIPE, stdout=PIPE, stderr=STDOUT)
        if proc.stdin is not None and input is not None:
            threading.Thread(target=_feed, args=(proc.stdin, input), daemon=True).start()
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            proc.kill()

        timer = threading.Timer(timeout or 0, expire)
        if timeout:
            timer.start()
        try:
            for raw in proc.stdout or ():
                on_line(raw.decode(errors="replace").rstrip("\r\n"))
            code = proc.wait()
        finally:
            timer.cancel()
        if expired.is_set():
            raise DriverError(f"{shlex.join(argv)!r} in {machine.name} did not finish within {timeout:g} s")
        return code

    def _require_running(self, machine: Machine) -> None:
        if self.runtime.status(self.container(machine)) != "running":
            raise DriverError(f"{machine.name} is not running", "start it with: labctl up")

    def init_pid(self, machine: Machine) -> int | None:
        """The container's first process as the host sees it (tests compare its namespaces)."""
        return self.runtime.pid(self.container(machine))


def _feed(stdin: IO[bytes], data: bytes) -> None:
    """Write data to the command's stdin and close it, so it sees end of file."""
    with contextlib.suppress(OSError):
        stdin.write(data)
        stdin.close()
