"""`up` is crash-consistent (issue 19): labctl killed with SIGKILL the moment a machine reaches a
phase of its create, or part way through provisioning, or stopped with Ctrl-C; the next `up`
finishes the lab, and the lab it reports ready is ready: every machine execs, the VM's first boot
is done, machines reach each other by name, each provisioning step ran once. `destroy` then
leaves nothing on the host.

The kill is triggered by the phase itself: LABCTL_FAILPOINT=MACHINE:PHASE makes labctl signal
itself as the machine enters that phase (after recording it in .labctl/state.json as
`progress`), so no sleep decides where labctl dies.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from test_containers import host_traces, labctl
from tests_support import free_subnet

from labctl.addressing import leases_of, libvirt_network_name
from labctl.drivers import LabContext
from labctl.labfile import load_lab
from labctl.labfile.models import Lab
from labctl.libvirt_util import connect, lab_objects

pytestmark = pytest.mark.integration

# Each step adds a line, so a line seen twice is a step that ran twice.
PROVISION = """\
    provision:
      - shell: echo one >> /root/provisioned
      - shell: sleep 2; echo two >> /root/provisioned
"""


def lab_text(subnet: str, with_vm: bool) -> str:
    vm = (
        f"  vm:\n    kind: vm\n    box: debian-12\n    memory: 512M\n    networks: [lan]\n{PROVISION}"
        if with_vm
        else ""
    )
    return (
        textwrap.dedent(f"""\
        name: faults
        networks:
          lan: {{cidr: {subnet}, mode: isolated}}
        machines:
        """)
        + vm
        + f"  sys:\n    kind: lxc\n    box: debian-12\n    memory: 256M\n    networks: [lan]\n{PROVISION}"
        + f"  app:\n    kind: ns\n    box: debian-12\n    memory: 64M\n    networks: [lan]\n{PROVISION}"
    )


def records(labdir: Path) -> dict[str, Any]:
    try:
        machines: dict[str, Any] = json.loads((labdir / ".labctl" / "state.json").read_text())["machines"]
    except (OSError, ValueError, KeyError):
        return {}  # not written yet, or caught between two atomic renames
    return machines


def start_up(labdir: Path, failpoint: str | None = None) -> subprocess.Popen[str]:
    extra = {"LABCTL_FAILPOINT": failpoint} if failpoint else {}
    return subprocess.Popen(
        [sys.executable, "-m", "labctl", "up"],
        cwd=labdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "NO_COLOR": "1", **extra},
    )


def up_stopped_at(labdir: Path, failpoint: str, limit: float = 600) -> tuple[int, str]:
    """`labctl up` that signals itself at failpoint (MACHINE:POINT[:SIGNAL]): exit code, output."""
    proc = start_up(labdir, failpoint)
    try:
        output, _ = proc.communicate(timeout=limit)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, output


def steps_recorded(labdir: Path) -> dict[str, int]:
    """How many provisioning steps each machine's record says were done (read after a kill)."""
    return {name: record.get("provisioned_steps", 0) for name, record in records(labdir).items()}


def assert_ready(labdir: Path, lab: Lab, recorded: dict[str, int] | None = None) -> None:
    """What `up` promised: every machine execs, first boots are done, names resolve across kinds,
    and provisioning ran: each step recorded as done before the kill exactly once, every other
    step at least once (a step cut off between its effect and its record runs again, and only
    such a step: at most twice)."""
    names = [m.name for m in lab.machines]
    status = json.loads(labctl(labdir, "status", "--json").stdout)
    assert {m["name"]: m["ready"] for m in status["machines"]} == dict.fromkeys(names, True), status
    for name in names:
        lines = labctl(labdir, "exec", name, "--", "cat", "/root/provisioned")
        assert lines.returncode == 0, lines.stderr
        words = lines.stdout.split()
        done = (recorded or {}).get(name, 0)
        for step, word in enumerate(["one", "two"], 1):
            allowed = {1} if step <= done or recorded is None else {1, 2}
            assert words.count(word) in allowed, f"{name}: step {step} ran {words.count(word)} times: {words}"
        assert sorted(words, key=["one", "two"].index) == words, f"{name}: steps out of order: {words}"
    if "vm" in names:
        booted = labctl(labdir, "exec", "vm", "--", "test", "-f", "/var/lib/cloud/instance/boot-finished")
        assert booted.returncode == 0, "the VM's first boot is not finished"
    for source in ("sys", "app"):
        for target in names:
            result = labctl(labdir, "exec", source, "--", "ping", "-c", "1", "-W", "5", target)
            assert result.returncode == 0, f"{source} -> {target}: {result.stdout}{result.stderr}"


def assert_nothing_left(labdir: Path, lab: Lab) -> None:
    result = labctl(labdir, "destroy")
    assert result.returncode == 0, result.stderr
    traces = host_traces(lab)
    assert traces == {key: set() for key in traces}
    assert lab_objects(lab.libvirt_uri, lab.id).domains == []
    assert lab_objects(lab.libvirt_uri, lab.id).networks == []
    assert not (labdir / ".labctl").exists()


@pytest.fixture
def make_lab(tmp_path: Path) -> Iterator[Callable[[bool], tuple[Path, Lab]]]:
    made: list[Path] = []

    def make(with_vm: bool) -> tuple[Path, Lab]:
        labdir = tmp_path / "lab"
        labdir.mkdir()
        (labdir / "labfile.yml").write_text(lab_text(free_subnet(), with_vm))
        made.append(labdir)
        return labdir, load_lab(str(labdir / "labfile.yml"))

    yield make
    for labdir in made:  # after a failure too; the test's own assertions already ran
        labctl(labdir, "destroy")


# Killed before a container exists for liblxc or runc (config, rootfs), the machine is created
# afresh; killed later, it exists and is finished ("resumed").
@pytest.mark.parametrize(
    ("machine", "phase", "verbs"),
    [
        ("sys", "config", {"created", "resumed"}),
        ("sys", "start", {"resumed"}),
        ("sys", "ready", {"resumed"}),
        ("app", "rootfs", {"created", "resumed"}),
        ("app", "bundle", {"created", "resumed"}),
        ("app", "create", {"created", "resumed"}),
        ("app", "network", {"resumed"}),
        ("app", "start", {"resumed"}),
    ],
)
def test_containers_killed_in_a_phase_are_finished_by_the_next_up(
    make_lab: Callable[[bool], tuple[Path, Lab]], machine: str, phase: str, verbs: set[str]
) -> None:
    labdir, lab = make_lab(False)
    code, output = up_stopped_at(labdir, f"{machine}:{phase}")
    assert code == -signal.SIGKILL, output
    assert records(labdir)[machine]["status"] == "creating"
    assert records(labdir)[machine]["progress"] == phase
    recorded = steps_recorded(labdir)
    result = labctl(labdir, "up")
    assert result.returncode == 0, result.stdout + result.stderr
    said = {verb for verb in ("created", "resumed") if f"{machine}: {verb} (" in result.stderr}
    assert said and said <= verbs, result.stderr
    if "resumed" in said:
        assert f"{machine}: an earlier up did not finish creating it; finishing it" in result.stderr
    assert_ready(labdir, lab, recorded)
    assert_nothing_left(labdir, lab)


@pytest.mark.parametrize(
    ("point", "label"),
    [
        ("vm:define", "disk, seed and domain being made"),
        ("vm:boot", "domain defined, QEMU starting"),
        ("vm:address", "guest booting, containers ready"),
        ("vm:ssh", "guest answering, labctl logging in"),
        ("vm:first_boot", "SSH up, cloud-init running"),
        ("vm:provisioned-1", "provisioning: step 1 of 2 done"),
    ],
    ids=["define", "boot", "address", "ssh", "first_boot", "provisioning"],
)
def test_a_vm_lab_killed_part_way_is_finished_by_the_next_up(
    make_lab: Callable[[bool], tuple[Path, Lab]], point: str, label: str
) -> None:
    labdir, lab = make_lab(True)
    code, output = up_stopped_at(labdir, point)
    assert code == -signal.SIGKILL, f"{label}: {output}"
    recorded = steps_recorded(labdir)
    started = time.monotonic()
    result = labctl(labdir, "up")
    assert result.returncode == 0, result.stdout + result.stderr
    if "provisioning" in label:
        assert "vm: step 1/2 (shell): done before" in result.stderr
    elif point != "vm:define":  # killed in define, the domain may not exist yet: created anew
        assert "vm: an earlier up did not finish creating it; finishing it" in result.stderr
    assert_ready(labdir, lab, recorded)
    print(f"{label}: the second up took {time.monotonic() - started:.1f} s")
    assert_nothing_left(labdir, lab)


def test_ctrl_c_finishes_the_machines_under_way_and_a_second_one_stops_at_once(
    make_lab: Callable[[bool], tuple[Path, Lab]],
) -> None:
    labdir, lab = make_lab(False)
    code, output = up_stopped_at(labdir, "sys:start:INT")
    assert code == 130, output
    assert "interrupted: finishing the 2 machine(s) being worked on" in output
    # Both were under way: both were finished, neither is left half-made.
    assert {name: r.get("status") for name, r in records(labdir).items()} == {
        "sys": "created",
        "app": "created",
    }
    assert labctl(labdir, "destroy").returncode == 0

    # A second Ctrl-C stops at once; what it left is finished by the next up.
    proc = start_up(labdir, "sys:start:INT")
    try:
        seen: list[str] = []
        while "interrupted" not in (line := proc.stdout.readline() if proc.stdout else ""):
            assert line, f"up ended without saying it was interrupted: {seen}"
            seen.append(line)
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, output
    assert "stopped: `labctl up` finishes the machines left unfinished" in output
    recorded = steps_recorded(labdir)
    result = labctl(labdir, "up")
    assert result.returncode == 0, result.stdout + result.stderr
    assert_ready(labdir, lab, recorded)
    assert_nothing_left(labdir, lab)


def test_a_vm_the_host_cannot_start_leaves_nothing_and_the_next_up_creates_it(
    make_lab: Callable[[bool], tuple[Path, Lab]],
) -> None:
    """QEMU refuses to start a guest larger than the host's memory (the kernel will not commit
    it): up fails naming the VM, removes its domain and files, and once the labfile asks for
    what the host has, up makes the lab."""
    labdir, _ = make_lab(True)
    labfile = labdir / "labfile.yml"
    labfile.write_text(labfile.read_text().replace("memory: 512M", "memory: 900G", 1))
    result = labctl(labdir, "up")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "error: vm: cannot start vm vm" in result.stderr
    assert "up failed for 1 of 3 machines: vm" in result.stderr
    lab = load_lab(str(labfile))
    assert lab_objects(lab.libvirt_uri, lab.id).domains == []
    assert not (LabContext(lab).data_dir / "vm" / "vm").exists()
    assert records(labdir)["vm"]["status"] == "creating"
    labfile.write_text(labfile.read_text().replace("memory: 900G", "memory: 512M", 1))
    result = labctl(labdir, "up")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "vm: created" in result.stderr and "sys: running" in result.stderr
    lab = load_lab(str(labfile))
    assert_ready(labdir, lab, steps_recorded(labdir))
    assert_nothing_left(labdir, lab)


def test_up_killed_between_defining_and_starting_a_network_is_finished_by_the_next_up(
    make_lab: Callable[[bool], tuple[Path, Lab]],
) -> None:
    labdir, _ = make_lab(False)
    labfile = labdir / "labfile.yml"
    text = labfile.read_text().replace("networks:\n", f"networks:\n  back: {{cidr: {free_subnet()}}}\n", 1)
    labfile.write_text(text.replace("64M\n    networks: [lan]", "64M\n    networks: [lan, back]"))
    lab = load_lab(str(labfile))
    code, output = up_stopped_at(labdir, "network-back:defined")
    assert code == -signal.SIGKILL, output
    # back is the lab's first network: defined, not started, and lan not made yet.
    back_name = libvirt_network_name(lab, lab.network("back"))
    assert lab_objects(lab.libvirt_uri, lab.id).networks == [back_name]
    assert not connect(lab.libvirt_uri).networkLookupByName(back_name).isActive()
    result = labctl(labdir, "up")
    assert result.returncode == 0, result.stdout + result.stderr
    assert_ready(labdir, lab)
    back = next(lease for lease in leases_of(lab, lab.machine("app")) if lease.network == "back")
    gateway = labctl(labdir, "exec", "app", "--", "ping", "-c", "1", "-W", "5", str(back.gateway))
    assert gateway.returncode == 0, f"app cannot reach the host on network back: {gateway.stdout}"
    assert_nothing_left(labdir, lab)
