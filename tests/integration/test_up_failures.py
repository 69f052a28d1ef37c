"""A failed `up` leaves a lab the next `up` finishes and `destroy` removes (issue 19).

Faults injected into `labctl up` of container machines (LXC from debian-12; ns with and without
the box): a tool missing from PATH, the lab's data directory full, a readiness timeout made
short for the test (LABCTL_READY_TIMEOUT), and a provisioning step that fails. Each test checks
that `up` fails with exit 1 (or 2, for a host check before anything is made) and says what
failed, that a machine that failed while being created leaves no trace on the host, that the
next `up` (the fault gone) exits 0 with every machine ready and each provisioning step run once,
and that `destroy` then leaves nothing. Each step appends a line to /root/provisioned, so a line
seen twice is a step that ran twice.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest
from test_containers import host_traces, labctl
from test_up_faults import assert_nothing_left, records
from tests_support import free_subnet

from labctl.drivers import LabContext
from labctl.drivers.containers import container_name
from labctl.drivers.lxc import LxcDriver
from labctl.drivers.ns import NsDriver
from labctl.drivers.overlay import is_mounted
from labctl.labfile import load_lab
from labctl.labfile.models import Kind, Lab

pytestmark = pytest.mark.integration

HOST_DIRS = ("/usr/sbin", "/usr/bin", "/sbin", "/bin")
MACHINES = {
    "sys": ["kind: lxc", "box: debian-12", "memory: 256M", "networks: [lan]"],
    "app": ["kind: ns", "box: debian-12", "memory: 64M", "networks: [lan]"],
    "bare": ["kind: ns", "memory: 32M", "namespaces: [net, uts, mnt]", "networks: [lan]"],
}
Provision = Mapping[str, Sequence[str]]  # machine -> its shell steps


def labfile(subnet: str, machines: Provision) -> str:
    text = textwrap.dedent(f"""\
        name: failures
        networks:
          lan: {{cidr: {subnet}, mode: isolated}}
        machines:
        """)
    for name, shell in machines.items():
        text += f"  {name}:\n" + "".join(f"    {line}\n" for line in MACHINES[name])
        if shell:  # JSON strings are YAML double-quoted scalars
            text += "    provision:\n" + "".join(f"      - shell: {json.dumps(s)}\n" for s in shell)
    return text


def appends(word: str) -> str:
    return f"echo {word} >> /root/provisioned"


def output(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"


class TestLab:
    """One lab directory of a test: its labfile, the lab as loaded, the CLI on it."""

    __test__ = False

    def __init__(self, labdir: Path, subnet: str) -> None:
        self.dir = labdir
        self.subnet = subnet
        self.lab: Lab | None = None

    def write(self, machines: Provision) -> Lab:
        (self.dir / "labfile.yml").write_text(labfile(self.subnet, machines))
        self.lab = load_lab(str(self.dir / "labfile.yml"))
        return self.lab

    def __call__(self, *args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return labctl(self.dir, *args, env=env)

    @property
    def data_dir(self) -> Path:
        assert self.lab is not None
        return LabContext(self.lab).data_dir


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[TestLab]:
    labdir = tmp_path / "lab"
    labdir.mkdir()
    made = TestLab(labdir, free_subnet())
    yield made
    # After a failure too (the test's own assertions ran already); a test that mounted a
    # tmpfs on the data dir unmounts it in its own finally, before this runs.
    if made.lab is not None:
        labctl(labdir, "destroy")


def traces_of(lab: Lab, name: str) -> dict[str, set[str]]:
    """What host_traces lists of one machine: its links, mounts, netns, containers, cgroups, dirs."""
    context = LabContext(lab)
    machine = lab.machine(name)
    container = container_name(context, machine)
    if machine.kind is Kind.LXC:
        links = {nic.host for nic in LxcDriver(context).nics(machine)}
    else:
        links = {link.host for link in NsDriver(context).links(machine)}
    bundle = str(context.data_dir / "ns" / name)

    def mine(trace: str) -> bool:
        return container in trace or trace in links or trace == bundle or trace.startswith(bundle + "/")

    return {key: {t for t in found if mine(t)} for key, found in host_traces(lab).items()}


def assert_destroyed(lab: TestLab) -> None:
    """destroy exits 0 and the host keeps nothing of the lab: no trace, no data dir, no state."""
    assert lab.lab is not None
    assert_nothing_left(lab.dir, lab.lab)
    assert not lab.data_dir.exists()


def assert_no_trace(lab: Lab, name: str) -> None:
    traces = traces_of(lab, name)
    assert traces == {key: set() for key in traces}, f"{name} left {traces}"


def machine_states(lab: TestLab) -> dict[str, tuple[str, bool]]:
    result = lab("status", "--json")
    assert result.returncode == 0, output(result)
    return {m["name"]: (m["state"], m["ready"]) for m in json.loads(result.stdout)["machines"]}


def assert_all_ready(lab: TestLab, provisioned: Mapping[str, Sequence[str]] = {}) -> None:
    """Every machine ready and execs; the lines of /root/provisioned are the expected ones."""
    assert lab.lab is not None
    names = [m.name for m in lab.lab.machines]
    assert {n: ready for n, (_, ready) in machine_states(lab).items()} == dict.fromkeys(names, True)
    for name in names:
        result = lab("exec", name, "--", "hostname")
        assert result.returncode == 0, output(result)
    for name, lines in provisioned.items():
        result = lab("exec", name, "--", "cat", "/root/provisioned")
        assert result.returncode == 0, output(result)
        assert result.stdout.split() == list(lines), f"{name}: {result.stdout!r}"


# -- 1. a tool missing from PATH ------------------------------------------------------------------


def path_without(tool: str, into: Path) -> str:
    """A directory of links to every program of HOST_DIRS but tool (the first of each name wins)."""
    into.mkdir()
    for directory in HOST_DIRS:
        for program in sorted(Path(directory).iterdir()):
            link = into / program.name
            if program.name != tool and not link.exists() and not link.is_symlink():
                link.symlink_to(program)
    assert not (into / tool).exists()
    return str(into)


@pytest.mark.parametrize(
    ("tool", "machines", "failing", "package"),
    [
        # Checked on the host before anything is made:
        ("runc", ["app", "bare"], None, "runc"),
        ("lxc-start", ["sys"], None, "lxc"),
        # Needed part way through a create: the machine that needs it is undone, the others made.
        ("lxc-wait", ["sys", "app"], "sys", "lxc"),  # LXC's ready phase
        ("mount", ["app", "bare"], "app", "mount"),  # the overlay of an ns machine with a box
    ],
    ids=["runc", "lxc-start", "lxc-wait", "mount"],
)
def test_a_missing_tool_fails_up_cleanly_and_the_next_up_finishes(
    lab: TestLab, tmp_path: Path, tool: str, machines: list[str], failing: str | None, package: str
) -> None:
    made = lab.write(dict.fromkeys(machines, (appends("one"),)))
    bin_dir = path_without(tool, tmp_path / "bin")

    result = lab("up", env={"PATH": bin_dir})

    assert f"{tool} not found" in result.stderr, output(result)
    assert f"apt-get install {package}" in result.stderr, output(result)
    assert "Traceback" not in result.stderr, output(result)
    if failing is None:  # a host check: nothing was made at all
        assert result.returncode in (1, 2), output(result)
        traces = host_traces(made)
        assert traces == {key: set() for key in traces}
        assert not lab.data_dir.exists()
    else:
        assert result.returncode == 1, output(result)
        assert f"error: {failing}: {tool} not found" in result.stderr, output(result)
        assert f"up failed for 1 of {len(machines)} machines: {failing}" in result.stderr
        assert_no_trace(made, failing)
        states = machine_states(lab)
        assert states[failing][0] != "running", states
        others = [m for m in machines if m != failing]
        assert all(states[m] == ("running", True) for m in others), states

    result = lab("up")
    assert result.returncode == 0, output(result)
    assert_all_ready(lab, dict.fromkeys(machines, ("one",)))
    assert_destroyed(lab)


# -- 2. the lab's data directory full -------------------------------------------------------------


@contextlib.contextmanager
def small_data_dir(lab: TestLab, size: str) -> Iterator[Path]:
    """The lab's data dir as a tmpfs of size, mounted by the test before `up`. On the way out
    (a failed test too: the machines go before their disk) it is unmounted and removed."""
    data_dir = lab.data_dir
    data_dir.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0711", "tmpfs", data_dir], check=True)
    try:
        yield data_dir
    finally:
        if (lab.dir / ".labctl").exists():
            lab("destroy")
        for _ in range(4):  # lazily, if a machine a failed test left still holds it
            if is_mounted(data_dir) and subprocess.run(["umount", data_dir], check=False).returncode != 0:
                subprocess.run(["umount", "--lazy", data_dir], check=False)
    assert not is_mounted(data_dir)
    data_dir.rmdir()


def grow(data_dir: Path, size: str) -> None:
    """Free space: the tmpfs grown in place. Unmounting it under running machines would take
    their roots and runc's state from under them, which is not what freeing space does."""
    subprocess.run(["mount", "-o", f"remount,size={size}", data_dir], check=True)


def assert_destroyed_on(lab: TestLab, data_dir: Path) -> None:
    """What assert_destroyed checks, with the test's own mount point left."""
    assert lab.lab is not None
    result = lab("destroy")
    assert result.returncode == 0, output(result)
    assert list(data_dir.iterdir()) == []
    traces = host_traces(lab.lab)
    traces["mounts"].discard(str(data_dir))  # the test's tmpfs
    assert traces == {key: set() for key in traces}
    assert not (lab.dir / ".labctl").exists()


@pytest.mark.parametrize("machine", ["sys", "app"])
def test_a_full_data_dir_fails_provisioning_and_the_next_up_finishes_it(lab: TestLab, machine: str) -> None:
    """The machine's writable layer lives in the lab's data dir (LXC: lxc/<container>/upper, ns:
    ns/<machine>/upper), here a 16 MiB tmpfs that a 64 MiB file fills. With space freed and the
    step fixed, the next `up` finishes provisioning from the failed step."""
    big = "dd if=/dev/zero of=/root/big bs=1M count={}"
    lab.write({machine: [appends("one"), big.format(64), appends("three")]})
    with small_data_dir(lab, "16m") as data_dir:
        result = lab("up")
        assert result.returncode == 1, output(result)
        assert f"error: {machine}: step 2/3 (shell) exited 1" in result.stderr, output(result)
        assert "No space left on device" in result.stderr, output(result)
        assert "Traceback" not in result.stderr, output(result)
        assert records(lab.dir)[machine]["provisioned_steps"] == 1
        assert machine_states(lab)[machine] == ("running", True)  # made, only its provisioning failed

        grow(data_dir, "512m")
        lab.write({machine: [appends("one"), big.format(1), appends("three")]})
        result = lab("up")
        assert result.returncode == 0, output(result)
        assert f"{machine}: step 1/3 (shell): done before" in result.stderr, output(result)
        assert_all_ready(lab, {machine: ["one", "three"]})
        size = lab("exec", machine, "--", "stat", "-c", "%s", "/root/big")
        assert size.stdout.strip() == str(1024**2), output(size)
        assert_destroyed_on(lab, data_dir)


@pytest.mark.parametrize("machine", ["sys", "app"])
def test_a_full_data_dir_during_a_create_undoes_the_machine(lab: TestLab, machine: str) -> None:
    """No room left for the machine's own files (LXC's config and seed, the ns bundle): `up`
    says which phase failed and why, removes what it made, and the next `up` makes it."""
    made = lab.write({machine: [appends("one")]})
    with small_data_dir(lab, "1m") as data_dir:
        filler = data_dir / "filler"
        fill = ["dd", "if=/dev/zero", f"of={filler}", "bs=4k"]
        assert subprocess.run(fill, capture_output=True).returncode != 0  # ENOSPC: full
        result = lab("up")
        assert result.returncode == 1, output(result)
        failed = re.search(
            rf"^error: {machine}: phase '\w+' failed: No space left on device$", result.stderr, re.M
        )
        assert failed, output(result)
        assert "hint: free space where labctl keeps machines (df -h" in result.stderr, output(result)
        assert_no_trace(made, machine)
        assert machine_states(lab)[machine] == ("not created", False)

        filler.unlink()
        grow(data_dir, "64m")
        result = lab("up")
        assert result.returncode == 0, output(result)
        assert_all_ready(lab, {machine: ["one"]})
        assert_destroyed_on(lab, data_dir)


# -- 3. a readiness timeout ------------------------------------------------------------------------


def test_a_readiness_timeout_undoes_the_machine_and_the_next_up_makes_it(lab: TestLab) -> None:
    """LABCTL_READY_TIMEOUT=0.2: no LXC machine's sshd answers that soon after its start."""
    made = lab.write({"sys": [appends("one")], "app": [appends("one")]})

    refused = lab("up", env={"LABCTL_READY_TIMEOUT": "soon"})
    assert refused.returncode == 2, output(refused)
    assert "LABCTL_READY_TIMEOUT='soon' is not a number of seconds" in refused.stderr
    assert not lab.data_dir.exists()  # refused before anything was made

    result = lab("up", env={"LABCTL_READY_TIMEOUT": "0.2"})
    assert result.returncode == 1, output(result)
    assert "error: sys: phase 'ready' did not complete: sshd did not answer" in result.stderr, output(result)
    assert "within 0.2 s" in result.stderr
    assert "LABCTL_READY_TIMEOUT" in result.stderr  # the hint
    assert "up failed for 1 of 2 machines: sys" in result.stderr
    assert_no_trace(made, "sys")
    assert records(lab.dir)["sys"]["status"] == "creating"
    assert machine_states(lab) == {"sys": ("not created", False), "app": ("running", True)}

    result = lab("up")
    assert result.returncode == 0, output(result)
    assert "sys: created" in result.stderr and "app: running" in result.stderr, output(result)
    assert_all_ready(lab, {"sys": ["one"], "app": ["one"]})
    assert_destroyed(lab)


# -- 4. a provisioning step that fails -------------------------------------------------------------


def test_a_failed_step_is_fixed_and_the_next_up_runs_only_what_did_not_finish(lab: TestLab) -> None:
    machines = ["sys", "app", "bare"]
    failing = (appends("one"), appends("two"), "exit 3", appends("four"))
    lab.write(dict.fromkeys(machines, failing))

    result = lab("up")
    assert result.returncode == 1, output(result)
    for name in machines:
        assert f"error: {name}: step 3/4 (shell) exited 3" in result.stderr, output(result)
    assert "up failed for 3 of 3 machines: sys, app, bare" in result.stderr
    for name in machines:
        seen = lab("exec", name, "--", "cat", "/root/provisioned")
        assert seen.stdout.split() == ["one", "two"], output(seen)
        assert records(lab.dir)[name]["provisioned_steps"] == 2

    fixed = (appends("one"), appends("two"), appends("three"), appends("four"))
    lab.write(dict.fromkeys(machines, fixed))
    result = lab("up")
    assert result.returncode == 0, output(result)
    for name in machines:
        assert f"{name}: step 2/4 (shell): done before" in result.stderr, output(result)
    assert_all_ready(lab, dict.fromkeys(machines, ("one", "two", "three", "four")))
    assert all("provisioned_at" in records(lab.dir)[name] for name in machines)
    assert_destroyed(lab)
