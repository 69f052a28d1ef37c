"""Lab-changing commands run at once: one consistent lab or none, never a mix, and nothing hangs.

Two `up` of one lab, `up` with `destroy`, and every lab-changing verb while another process holds
the lab lock, on container machines only (LXC, ns with and without a box). Each test destroys its
lab at the end, checks that the host keeps no trace of it, and cleans up again in `finally`.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_containers import host_traces, labctl
from tests_support import free_subnet

from labctl import network, paths
from labctl.box import Box
from labctl.drivers import LabContext, MachineState
from labctl.drivers.lxc import LxcDriver
from labctl.drivers.ns import NsDriver
from labctl.errors import StateError
from labctl.lab import LabRunner, failed
from labctl.labfile import load_lab
from labctl.labfile.models import Lab
from labctl.libvirt_util import lab_objects
from labctl.state import LabState

pytestmark = pytest.mark.integration

LOCK_WAIT = 5.0  # what LabState.lock waits before it gives up
HANG = 600.0  # seconds after which a command counts as hung
LOCKED = "the lab is locked by another labctl process (pid {pid})"

MACHINES = {
    # An LXC container (slow to create: the lock is held for a while) and both flavours of ns.
    "mixed": """\
        sys: {kind: lxc, box: debian-12, memory: 256M, networks: [lan]}
        boxed: {kind: ns, box: debian-12, memory: 32M, networks: [lan]}
        hostns: {kind: ns, memory: 32M, networks: [lan]}
        """,
    # As mixed, with a provisioning step that keeps `up` holding the lock beyond another's wait.
    "slow": """\
        sys: {kind: lxc, box: debian-12, memory: 256M, networks: [lan]}
        boxed: {kind: ns, box: debian-12, memory: 32M, networks: [lan]}
        hostns: {kind: ns, memory: 32M, networks: [lan], provision: [{shell: sleep 8}]}
        """,
    # ns machines only: `up` may finish within the other command's lock wait.
    "ns": """\
        boxed: {kind: ns, box: debian-12, memory: 32M, networks: [lan]}
        hostns: {kind: ns, memory: 32M, namespaces: [pid, net, uts, ipc, mnt, user], networks: [lan]}
        """,
}


@dataclass
class Finished:
    pid: int
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def locked_by(self, pid: int) -> bool:
        return self.returncode == 1 and LOCKED.format(pid=pid) in self.stderr

    def said(self, name: str, verb: str) -> bool:
        return any(line.startswith(f"{name}: {verb} (") for line in self.stderr.splitlines())


def write_lab(labdir: Path, machines: str, extra: str = "") -> Lab:
    text = f"name: conc\nnetworks:\n  lan: {{cidr: {free_subnet()}, mode: isolated}}\nmachines:\n"
    text += textwrap.indent(textwrap.dedent(machines) + textwrap.dedent(extra), "  ")
    (labdir / "labfile.yml").write_text(text)
    return load_lab(str(labdir / "labfile.yml"))


def start(labdir: Path, *args: str) -> tuple[subprocess.Popen[str], float]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "labctl", *args],
        cwd=labdir,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
    )
    return proc, time.monotonic()


def finish(started: tuple[subprocess.Popen[str], float], timeout: float = HANG) -> Finished:
    """The command's result; a command still running after timeout seconds fails the test."""
    proc, began = started
    left = max(0.1, began + timeout - time.monotonic())
    try:
        out, err = proc.communicate(timeout=left)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"{proc.args!r} hung for {timeout:.0f} s:\n{out}{err}")
    return Finished(proc.pid, proc.returncode, out, err, time.monotonic() - began)


def finish_all(*started: tuple[subprocess.Popen[str], float], timeout: float = HANG) -> list[Finished]:
    """finish() of each, waited for side by side, so that each one's seconds are its own."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(started)) as pool:
        return list(pool.map(lambda one: finish(one, timeout), started))


def lab_traces(lab: Lab) -> dict[str, set[str]]:
    """host_traces, plus what belongs to the lab as a whole: its networks and bridge, its data
    and state directories and its entry in the register of lab ids."""
    traces = host_traces(lab)
    objects = lab_objects(lab.libvirt_uri, lab.id)
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    bridge = network.bridge_for(lab, "lan")
    traces["networks"] = set(objects.networks)
    traces["domains"] = set(objects.domains)
    traces["bridges"] = {bridge} if f": {bridge}:" in links or f": {bridge}@" in links else set()
    own = [LabContext(lab).data_dir, lab.root / ".labctl", paths.lab_owners_dir() / lab.id]
    traces["lab"] = {str(p) for p in own if p.exists()}
    return traces


def no_traces(lab: Lab) -> None:
    traces = lab_traces(lab)
    assert traces == {key: set() for key in traces}, traces


def states(labdir: Path) -> dict[str, str]:
    result = labctl(labdir, "status", "--json", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return {row["name"]: row["state"] for row in json.loads(result.stdout)["machines"]}


def fully_up(labdir: Path, lab: Lab) -> None:
    for machine in lab.machines:
        result = labctl(labdir, "exec", machine.name, "--", "true", timeout=120)
        assert result.returncode == 0, f"{machine.name}: {result.stdout}{result.stderr}"
    assert set(states(labdir).values()) == {MachineState.RUNNING.value}


def consistent_outcome(labdir: Path, lab: Lab) -> str:
    """'up' when every machine works, 'gone' when nothing of the lab is left; anything else fails."""
    now = states(labdir)
    if set(now.values()) == {MachineState.RUNNING.value}:
        fully_up(labdir, lab)
        return "up"
    assert set(now.values()) == {MachineState.NOT_CREATED.value}, f"a mix of up and gone: {now}"
    no_traces(lab)  # status reads records: the host must agree that nothing is there
    return "gone"


def destroy_and_check(labdir: Path, lab: Lab) -> None:
    result = labctl(labdir, "destroy", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    no_traces(lab)


@contextmanager
def cleaned_up(labdir: Path, lab: Lab) -> Iterator[None]:
    """Destroy the lab however the test ends; a cleanup failure never hides the test's own."""
    failing = True
    try:
        yield
        failing = False
    finally:
        try:
            labctl(labdir, "destroy", timeout=300)
            context = LabContext(lab)
            for machine in lab.machines:  # whatever the CLI left, so the host stays clean
                (LxcDriver if machine.kind == "lxc" else NsDriver)(context).destroy(machine)
            network.remove_networks(lab)
        except Exception:
            if not failing:
                raise


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout} s: {what}")
        time.sleep(0.05)


def holds_open(pid: int, path: Path) -> bool:
    """Whether process pid has path open (the lock file it waits on)."""
    for fd in Path(f"/proc/{pid}/fd").glob("*"):
        try:
            if os.readlink(fd) == str(path):
                return True
        except OSError:
            continue
    return False


# -- two `up` at once ---------------------------------------------------------------------------


@pytest.mark.parametrize("machines", sorted(MACHINES))
def test_two_ups_at_once_make_one_lab(debian_box: Box, tmp_path: Path, machines: str) -> None:
    lab = write_lab(tmp_path, MACHINES[machines])
    names = [m.name for m in lab.machines]
    with cleaned_up(tmp_path, lab):
        first, second = start(tmp_path, "up"), start(tmp_path, "up")
        results = finish_all(first, second)
        workers = [r for r in results if any(r.said(n, "created") for n in names)]
        assert len(workers) == 1, [r.stderr for r in results]
        (worker,) = workers
        (other,) = [r for r in results if r is not worker]
        assert worker.returncode == 0, worker.stderr
        assert all(worker.said(n, "created") for n in names), worker.stderr
        print(f"second up: exit {other.returncode} after {other.seconds:.1f} s")
        if machines == "slow":  # the worker held the lock for longer than the other waits
            assert other.returncode == 1, other.stderr
        if other.returncode == 0:  # it waited for the lock and found the lab done
            assert all(other.said(n, "running") for n in names), other.stderr
        else:
            assert other.locked_by(worker.pid), other.stderr
            assert other.seconds < LOCK_WAIT + 3, other.seconds  # fails fast, does not queue
            assert other.stdout == ""  # and touched nothing
        fully_up(tmp_path, lab)
        destroy_and_check(tmp_path, lab)


# -- `up` and `destroy` at once -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("machines", "delay"), [("mixed", 0.0), ("mixed", 1.0), ("mixed", 3.0), ("ns", 0.5), ("slow", 1.0)]
)
def test_up_and_destroy_at_once_leave_a_whole_lab_or_none(
    debian_box: Box, tmp_path: Path, machines: str, delay: float
) -> None:
    lab = write_lab(tmp_path, MACHINES[machines])
    with cleaned_up(tmp_path, lab):
        up = start(tmp_path, "up")
        time.sleep(delay)
        destroy = start(tmp_path, "destroy")
        up_result, destroy_result = finish_all(up, destroy)
        for result, other in ((up_result, destroy_result), (destroy_result, up_result)):
            # Each either did its work or was refused because the other held the lock.
            assert result.returncode == 0 or result.locked_by(other.pid), result.stdout + result.stderr
        assert 0 in (up_result.returncode, destroy_result.returncode)
        outcome = consistent_outcome(tmp_path, lab)
        print(f"up: exit {up_result.returncode}, destroy: exit {destroy_result.returncode}, lab {outcome}")
        if machines == "slow":  # destroy came while up held the lock, and gave up waiting
            assert (destroy_result.returncode, outcome) == (1, "up"), destroy_result.stderr
        if destroy_result.returncode != 0:
            assert outcome == "up"
        if up_result.returncode != 0:
            assert outcome == "gone"
        destroy_and_check(tmp_path, lab)


# -- every lab-changing verb respects the lock --------------------------------------------------

CHANGING_VERBS: Sequence[tuple[str, ...]] = [
    ("up",),
    ("destroy",),
    ("destroy", "hostns"),
    ("halt",),
    ("provision",),
    ("snapshot", "save", "boxed", "t1"),
    ("snapshot", "restore", "boxed", "t1"),
    ("snapshot", "delete", "boxed", "t1"),
]


def test_every_lab_changing_verb_refuses_while_the_lab_is_locked(debian_box: Box, tmp_path: Path) -> None:
    lab = write_lab(tmp_path, MACHINES["ns"], extra="plain: {kind: ns, memory: 32M, namespaces: [mnt]}\n")
    with cleaned_up(tmp_path, lab):
        result = labctl(tmp_path, "up")
        assert result.returncode == 0, result.stdout + result.stderr
        before = states(tmp_path)
        assert set(before.values()) == {MachineState.RUNNING.value}
        with LabState(lab.root, lab.id, lab.file).lock():
            began = time.monotonic()
            running = {verbs: start(tmp_path, *verbs) for verbs in CHANGING_VERBS}
            results = dict(zip(running, finish_all(*running.values(), timeout=60), strict=True))
            everything = time.monotonic() - began
        for verbs, done in results.items():
            assert done.locked_by(os.getpid()), f"{' '.join(verbs)}: {done.returncode} {done.stderr}"
            assert done.seconds >= LOCK_WAIT - 0.5, f"{' '.join(verbs)} did not wait: {done.seconds}"
        assert everything < 2 * LOCK_WAIT, f"the verbs took {everything:.1f} s under the lock"
        assert states(tmp_path) == before  # nothing changed while the lab was locked
        fully_up(tmp_path, lab)
        destroy_and_check(tmp_path, lab)


# -- a lock file that `destroy` removed is not a lock -------------------------------------------


def test_a_command_waiting_while_destroy_removes_the_lock_still_excludes_others(
    debian_box: Box, tmp_path: Path
) -> None:
    """`up` waits on .labctl/lock while `destroy` (here, this process) holds it and removes
    .labctl/: once it has the lock, `up` must hold the lock file others open, not a removed one."""
    slow = "slow: {kind: ns, memory: 32M, networks: [lan], provision: [{shell: sleep 6}]}\n"
    lab = write_lab(tmp_path, slow)
    state = LabState(lab.root, lab.id, lab.file)
    lock_file = state.dir / "lock"
    with cleaned_up(tmp_path, lab):
        with state.lock():
            up = start(tmp_path, "up")
            wait_for(lambda: holds_open(up[0].pid, lock_file), 30, "up opens the lock file")
            runner = LabRunner(lab)
            assert not failed(runner.destroy(runner.select([])))  # as `labctl destroy` does
            assert not state.dir.exists()
        wait_for(
            lambda: lock_file.exists() and lock_file.read_text().strip() == str(up[0].pid),
            LOCK_WAIT,
            f"up (pid {up[0].pid}) holds {lock_file}",
        )
        with (
            pytest.raises(StateError, match=rf"\(pid {up[0].pid}\)"),
            LabState(lab.root, lab.id, lab.file).lock(1.0),
        ):
            pass
        result = finish(up)
        assert result.returncode == 0, result.stderr
        fully_up(tmp_path, lab)
        destroy_and_check(tmp_path, lab)
