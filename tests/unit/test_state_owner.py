"""One .labctl/ per labfile: a second labfile in the same directory is refused, naming the owner;
state from before the labfile was recorded is adopted by the first labfile that writes it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_lab_orchestration import CREATED

from labctl.cli import main
from labctl.drivers import DRIVERS, MachineState
from labctl.labfile import load_lab
from labctl.labfile.models import Kind

# namespaces without net: no lab network, so no libvirt; the in-memory driver of the
# orchestration tests stands in for the ns driver.
ONE = "name: one\ndefaults: {kind: ns, namespaces: [mnt, pid]}\nmachines: {a: {}}\n"
TWO = "name: two\ndefaults: {kind: ns, namespaces: [mnt, pid]}\nmachines: {b: {}}\n"


@pytest.fixture(autouse=True)
def fake_driver(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(DRIVERS, Kind.NS, ("test_lab_orchestration", "FakeDriver"))
    monkeypatch.setenv("LABCTL_HOME", str(tmp_path / "home"))
    CREATED.clear()


def state_of(labdir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((labdir / ".labctl" / "state.json").read_text())
    return data


def test_the_labfile_is_recorded(write_labfile: Callable[..., Path]) -> None:
    one = write_labfile(ONE, "one.yml")
    assert main(["-f", "one.yml", "up"]) == 0
    assert state_of(one.parent)["labfile"] == str(one.resolve())


@pytest.mark.parametrize("second", [TWO, ONE], ids=["another-lab-name", "same-lab-name"])
def test_a_second_labfile_in_the_directory_is_refused_naming_the_owner(
    second: str, write_labfile: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    one = write_labfile(ONE, "one.yml")
    write_labfile(second, "two.yml")
    assert main(["-f", "one.yml", "up"]) == 0
    before = state_of(one.parent)
    capsys.readouterr()
    for verb in (["up"], ["status"], ["destroy"], ["halt"]):
        assert main(["-f", "two.yml", *verb]) == 1
        err = capsys.readouterr().err
        assert f"belongs to the labfile {one.resolve()}, not to" in err
        assert (
            f"hint: labfiles in one directory share .labctl/: destroy that lab first (labctl -f {one.resolve()} destroy)"
            in err
        )
    assert state_of(one.parent) == before
    assert set(CREATED) == {"a"}  # two.yml's destroy touched nothing of one.yml's lab
    assert main(["-f", "one.yml", "destroy"]) == 0
    assert main(["-f", "two.yml", "up"]) == 0  # the directory is free again
    assert state_of(one.parent)["labfile"] == str((one.parent / "two.yml").resolve())


def test_the_same_labfile_by_another_path_is_its_owner(write_labfile: Callable[..., Path]) -> None:
    one = write_labfile(ONE, "one.yml")
    (one.parent / "alias.yml").symlink_to("one.yml")
    assert main(["-f", "one.yml", "up"]) == 0
    assert main(["-f", str(one.parent / "alias.yml"), "status"]) == 0


def test_state_without_a_labfile_is_adopted_by_the_first_that_writes_it(
    write_labfile: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    one = write_labfile(ONE, "one.yml")
    write_labfile(ONE, "two.yml")
    lab = load_lab("one.yml")
    (one.parent / ".labctl").mkdir(mode=0o700)
    legacy = {"format": 1, "lab_id": lab.id, "machines": {"a": {"kind": "ns", "status": "created"}}}
    (one.parent / ".labctl" / "state.json").write_text(json.dumps(legacy))
    CREATED["a"] = MachineState.RUNNING  # the legacy lab's machine exists
    assert main(["-f", "one.yml", "up"]) == 0
    assert state_of(one.parent)["labfile"] == str(one.resolve())
    assert main(["-f", "two.yml", "destroy"]) == 1
    assert "belongs to the labfile" in capsys.readouterr().err
    assert "a" in CREATED
