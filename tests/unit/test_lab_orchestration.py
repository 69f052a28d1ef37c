"""LabRunner with an in-memory driver: parallel up, one failure reported without stopping the
others, re-running up completes the lab, destroy removes orphans and the lab's state."""

from __future__ import annotations

import argparse
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from labctl.cli import main
from labctl.drivers import DRIVERS, Driver, ExecResult, MachineState
from labctl.errors import DriverError, HostError
from labctl.labfile.models import Kind, Machine

CREATED: dict[str, MachineState] = {}
FAIL_ONCE: set[str] = set()
RESUMED: list[str] = []
LOCK = threading.Lock()


class FakeDriver(Driver):
    kind = Kind.NS

    def check_host(self, machines: Sequence[Machine]) -> None:
        if any(m.name == "needs-kvm" for m in machines):
            raise HostError("no KVM here", "use accel: tcg")

    def create(self, machine: Machine) -> None:
        with LOCK:
            if machine.name in FAIL_ONCE:
                FAIL_ONCE.discard(machine.name)
                raise DriverError("boot failed", "look at the console log")
            CREATED[machine.name] = MachineState.RUNNING

    def start(self, machine: Machine) -> None:
        CREATED[machine.name] = MachineState.RUNNING

    def resume(self, machine: Machine) -> None:
        RESUMED.append(machine.name)
        CREATED[machine.name] = MachineState.RUNNING

    def stop(self, machine: Machine, timeout: float = 60.0) -> None:
        CREATED[machine.name] = MachineState.STOPPED

    def destroy(self, machine: Machine) -> None:
        CREATED.pop(machine.name, None)

    def state(self, machine: Machine) -> MachineState:
        return CREATED.get(machine.name, MachineState.NOT_CREATED)

    def address(self, machine: Machine) -> str | None:
        return None

    def exec(self, machine: Machine, argv: Sequence[str], *, tty: bool = False) -> int:
        return 0

    def run(
        self,
        machine: Machine,
        argv: Sequence[str],
        *,
        input: bytes | None = None,
        timeout: float | None = None,
    ) -> ExecResult:
        return ExecResult(0, "", "")


@pytest.fixture
def fake_lab(write_labfile: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setitem(DRIVERS, Kind.NS, (__name__, "FakeDriver"))
    monkeypatch.setenv("LABCTL_HOME", str(tmp_path / "home"))
    CREATED.clear()
    FAIL_ONCE.clear()
    RESUMED.clear()
    # namespaces without net: no lab network is needed, so no libvirt either
    return write_labfile(
        "name: fake\ndefaults: {kind: ns, namespaces: [mnt, pid]}\nmachines: {a: {}, b: {}, c: {}}\n"
    )


def test_one_failure_does_not_stop_the_others_and_up_again_completes(
    fake_lab: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    FAIL_ONCE.add("b")
    assert main(["up"]) == 1
    err = capsys.readouterr().err
    assert "error: b: boot failed" in err
    assert "hint: look at the console log" in err
    assert "up failed for 1 of 3 machines: b" in err
    assert set(CREATED) == {"a", "c"}
    assert main(["up"]) == 0
    assert set(CREATED) == {"a", "b", "c"}
    captured = capsys.readouterr()
    assert "a: running" in captured.err
    summary = [line.split() for line in captured.out.splitlines()]
    assert summary == [
        ["NAME", "KIND", "STATE", "ADDRESS", "BOX"],
        ["a", "ns", "running"],
        ["b", "ns", "running"],
        ["c", "ns", "running"],
    ]


def test_halt_then_up_starts_stopped_machines(fake_lab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["up"]) == 0
    assert main(["halt", "a"]) == 0
    assert CREATED.get("a") is MachineState.STOPPED
    assert main(["up"]) == 0
    assert "a: started" in capsys.readouterr().err
    assert CREATED.get("a") is MachineState.RUNNING


def test_destroy_removes_orphans_and_state(fake_lab: Path, write_labfile: Callable[[str], Path]) -> None:
    assert main(["up"]) == 0
    assert (fake_lab.parent / ".labctl" / "state.json").exists()
    write_labfile("name: fake\ndefaults: {kind: ns, namespaces: [mnt, pid]}\nmachines: {a: {}}\n")
    assert main(["destroy"]) == 0
    assert CREATED == {}
    assert not (fake_lab.parent / ".labctl").exists()


def test_host_check_fails_before_anything_is_created(
    fake_lab: Path, write_labfile: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    write_labfile("name: fake\ndefaults: {kind: ns, namespaces: [mnt]}\nmachines: {a: {}, needs-kvm: {}}\n")
    assert main(["up"]) == 1
    assert "error: no KVM here" in capsys.readouterr().err
    assert CREATED == {}


@pytest.mark.parametrize(
    ("status", "why"),
    [
        ("creating", "an earlier up did not finish creating it"),
        ("starting", "an earlier up did not finish starting it"),
        (None, "it exists but labctl has no record of it being ready"),
    ],
)
def test_a_running_machine_no_up_saw_ready_is_finished_not_trusted(
    fake_lab: Path, capsys: pytest.CaptureFixture[str], status: str | None, why: str
) -> None:
    from labctl.cli.common import open_lab
    from labctl.cli.status import machine_rows

    assert main(["up"]) == 0
    runner = open_lab(argparse.Namespace(file=None))
    if status is None:
        runner.context.state.forget_machine("b")
    else:
        runner.context.state.update_machine("b", status=status, progress="boot")
        row = {r["name"]: r for r in machine_rows(runner, runner.lab.machines)}["b"]
        assert row["state"] == "running (unfinished)" and not row["ready"] and row["progress"] == "boot"
    capsys.readouterr()
    assert main(["up"]) == 0
    err = capsys.readouterr().err
    assert f"b: {why}; finishing it" in err
    assert "b: resumed" in err and "a: running" in err
    assert RESUMED == ["b"]
    record = runner.context.state.machines()["b"]
    assert record["status"] == "created" and record["progress"] is None
    assert main(["up"]) == 0
    assert RESUMED == ["b"]  # ready now: not finished again


def test_the_failpoint_signals_only_at_the_named_machine_and_point(monkeypatch: pytest.MonkeyPatch) -> None:
    import signal

    from labctl.failpoints import failpoint

    seen: list[int] = []
    previous = signal.signal(signal.SIGUSR1, lambda signum, _frame: seen.append(signum))
    try:
        failpoint("a", "boot")  # unset: nothing
        monkeypatch.setenv("LABCTL_FAILPOINT", "a:boot:USR1")
        failpoint("b", "boot")
        failpoint("a", "ssh")
        assert seen == []
        failpoint("a", "boot")
        assert seen == [signal.SIGUSR1]
    finally:
        signal.signal(signal.SIGUSR1, previous)
