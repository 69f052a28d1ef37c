"""The bench loop: rounds of every workload on every target, interleaved, warm-up discarded.

Round 0 is the warm-up (caches, page cache, JIT-free but lazy binaries, CPU frequency), then
`repeats` measured rounds. Within a round each workload runs on all targets one after the other,
so slow drift of the host (other load, thermal state) spreads evenly over the targets instead of
biasing whichever ran last. Every sample is written to the results file as soon as it exists.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace

from labctl import console
from labctl import run as runner
from labctl.bench.results import ResultsFile
from labctl.bench.targets import Target
from labctl.bench.workloads import WORKLOADS, Params, Suite, Workload
from labctl.drivers import ExecResult
from labctl.errors import LabctlError


class Bench:
    def __init__(
        self,
        targets: Sequence[Target],
        suite: Suite,
        repeats: int,
        results: ResultsFile,
        workloads: Sequence[Workload] = WORKLOADS,
    ) -> None:
        self.targets = list(targets)
        self.suite = suite
        self.repeats = repeats
        self.results = results
        self.workloads = list(workloads)
        self._direct: dict[str, bool] = {}  # per target: does its filesystem take O_DIRECT?
        self._ports: dict[str, int] = {}
        self._scratch: dict[str, str] = {}  # per target: its private scratch directory

    def run(self) -> None:
        for target in self.targets:
            with console.step(f"describing {target.name}"):
                self.results.add_target(target.describe(), target.cost())
        addresses = {a for t in self.targets if (a := t.server_address())}
        with network_servers(sorted(addresses)) as ports:
            self._ports = ports
            try:
                for target in self.targets:
                    self._make_scratch(target)
                for round_ in range(self.repeats + 1):
                    for workload in self.workloads:
                        for target in self.targets:
                            self._one(target, workload, round_)
            finally:
                self._clean_scratch()

    def _one(self, target: Target, workload: Workload, round_: int) -> None:
        label = "warm-up" if round_ == 0 else f"{round_}/{self.repeats}"
        params = self._params(target, workload)
        if params is None:
            self._skip(target, workload, round_)
            return
        started = time.monotonic()
        try:
            values = self._measure(target, workload, params)
        except LabctlError as exc:
            console.warn(f"[{label}] {workload.name} on {target.name} failed: {exc.message}")
            self.results.add_error(target.name, workload.name, round_, exc.message)
            return
        seconds = round(time.monotonic() - started, 2)
        extra = {"direct": self._direct.get(target.name, True)} if workload.name == "disk" else {}
        self.results.add_sample(target.name, workload.name, round_, values, seconds=seconds, **extra)
        shown = ", ".join(f"{k} {v:,.1f}" for k, v in values.items())
        console.info(f"[{label}] {workload.name} on {target.name}: {shown} ({seconds:.1f} s)")

    def _params(self, target: Target, workload: Workload) -> Params | None:
        scratch = self._scratch.get(target.name)
        if scratch is None and workload.name == "disk":
            return None  # no private directory for fio's file: said when it failed
        params = Params(self.suite, scratch=f"{scratch}/fio", direct=self._direct.get(target.name, True))
        if not workload.network:
            return params
        address = target.server_address()
        if address is None or address not in self._ports:
            return None
        return replace(params, server=address, port=self._ports[address])

    def _skip(self, target: Target, workload: Workload, round_: int) -> None:
        if round_ == 0 and workload.network:  # a disk skipped for its scratch was noted then
            note = f"{workload.name} skipped on {target.name}: it has no network path to the host"
            console.notice(note)
            self.results.note(note)

    def _measure(self, target: Target, workload: Workload, params: Params) -> dict[str, float]:
        timeout = workload.timeout(self.suite)
        result = target.run(workload.command(params), timeout=timeout)
        if result.returncode != 0 and workload.name == "disk" and params.direct:
            # The filesystem refused O_DIRECT (overlayfs on older kernels, tmpfs): measure
            # buffered I/O instead, and say so in the results.
            self._direct[target.name] = False
            self.results.note(
                f"disk on {target.name}: O_DIRECT refused, buffered I/O measured (page cache included)"
            )
            params = replace(params, direct=False)
            result = target.run(workload.command(params), timeout=timeout)
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()[-3:]
            raise LabctlError(f"exited {result.returncode}: {' '.join(detail)}")
        return workload.parse(result.stdout + "\n" + result.stderr)

    def _make_scratch(self, target: Target) -> None:
        """fio's file goes into a directory mktemp makes for this bench (0700, a new random name):
        never a fixed path in the world-writable /var/tmp, where anyone could put a link to a file
        for fio, run as root, to overwrite. /var/tmp and not /tmp: the disk, not a tmpfs."""
        try:
            result = target.run(SCRATCH_DIR, timeout=60)
        except LabctlError as exc:
            result = ExecResult(1, "", exc.message)
        path = result.stdout.strip()
        if result.returncode == 0 and path.startswith("/var/tmp/labctl-bench.") and "\n" not in path:
            self._scratch[target.name] = path
            return
        note = f"disk skipped on {target.name}: mktemp failed: {(result.stderr or result.stdout).strip()}"
        console.warn(note)
        self.results.note(note)

    def _clean_scratch(self) -> None:
        for target in self.targets:
            if target.name in self._scratch:
                with contextlib.suppress(LabctlError):
                    target.run(["rm", "-rf", "--", self._scratch.pop(target.name)], timeout=60)


SCRATCH_DIR = ["mktemp", "-d", "-p", "/var/tmp", "labctl-bench.XXXXXXXXXX"]


@contextlib.contextmanager
def network_servers(addresses: Sequence[str]) -> Iterator[dict[str, int]]:
    """One iperf3 server per host address, bound to that address only (never 0.0.0.0)."""
    processes = []
    ports: dict[str, int] = {}
    try:
        for address in addresses:
            port = free_port(address)
            argv = ["iperf3", "--server", "--bind", address, "--port", str(port)]
            processes.append(runner.start(argv, stdout=runner.DEVNULL, stderr=runner.DEVNULL))
            if wait_listening(address, port):
                ports[address] = port
            else:
                console.warn(
                    f"iperf3 server on {address}:{port} did not start; network workloads skipped there"
                )
        yield ports
    finally:
        for process in processes:
            process.terminate()
            try:
                process.wait(timeout=5)
            except Exception:  # a stuck server must not hide the bench's outcome
                process.kill()


def free_port(address: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((address, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_listening(address: str, port: int, timeout: float = 10.0) -> bool:
    """Poll the kernel's socket table (not a connection, which iperf3 would count as a test)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = runner.run(["ss", "-Hltn", f"src {address}:{port}"], check=False, timeout=10).stdout
        if out.strip():
            return True
        time.sleep(0.2)
    return False
