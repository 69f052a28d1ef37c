"""State is not trusted: a crafted .labctl/ never makes `destroy` remove anything outside the
lab's own directories. Each attack aims at a stand-in directory under tmp_path (holding a file
that must survive); the lab's VM runs on libvirt's test:///default driver, so the real VM
driver's destroy runs, with nothing touching the host."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from labctl.cli import main
from labctl.errors import LabctlError, StateError
from labctl.paths import removable, remove_tree
from labctl.state import FORMAT, LabState

pytest.importorskip("libvirt")

LABFILE = """\
name: trap
libvirt_uri: test:///default
networks: {lan: {cidr: 10.213.200.0/24}}
machines:
  web: {kind: vm, box: debian-12, networks: [lan]}
"""


@pytest.fixture
def standin(tmp_path: Path) -> Path:
    """What an attack would destroy: a directory outside every labctl directory."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious").write_text("keep me\n")
    return victim


@pytest.fixture
def lab(write_labfile: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The lab directory, with LABCTL_HOME under tmp_path."""
    monkeypatch.setenv("LABCTL_HOME", str(tmp_path / "home"))
    return write_labfile(LABFILE).parent


def lab_id() -> str:
    from labctl.labfile import load_lab

    return load_lab(None).id


def write_state(lab: Path, data: Any) -> Path:
    state_dir = lab / ".labctl"
    state_dir.mkdir(mode=0o700, exist_ok=True)
    path = state_dir / "state.json"
    path.write_text(json.dumps(data))
    path.chmod(0o600)
    return path


def intact(standin: Path) -> bool:
    return (standin / "precious").read_text() == "keep me\n"


def escape(lab: Path, standin: Path) -> str:
    """A relative path from the lab's vm/ data directory to the stand-in. That directory is made,
    as in a lab that has had a VM: the kernel walks ../ only out of directories that exist."""
    data_vm = lab.parent / "home" / "labs" / lab_id() / "vm"
    data_vm.mkdir(parents=True, exist_ok=True)
    return os.path.relpath(standin, data_vm)


# -- a state file naming paths ----------------------------------------------------------------


def crafted_states(lab: Path, standin: Path) -> dict[str, Any]:
    up = escape(lab, standin)
    ok = {"format": FORMAT, "lab_id": lab_id()}
    return {
        "orphan named ../": {**ok, "machines": {up: {"kind": "vm"}}},
        "orphan named by absolute path": {**ok, "machines": {str(standin): {"kind": "vm"}}},
        "orphan named /etc": {**ok, "machines": {"/etc": {"kind": "lxc"}}},
        "name ending in a newline": {**ok, "machines": {"web\n": {"kind": "vm"}}},
        "unknown record field": {**ok, "machines": {"web": {"kind": "vm", "data_dir": str(standin)}}},
        "unknown top-level key": {**ok, "machines": {}, "data_dir": str(standin)},
        "kind that is no kind": {**ok, "machines": {"web": {"kind": "../vm"}}},
        "box that is a path": {**ok, "machines": {"web": {"kind": "vm", "box": up}}},
        "lab id that is a path": {**ok, "lab_id": f"trap-abcdef/{up}", "machines": {}},
        "machines not a mapping": {**ok, "machines": [up]},
        "not an object": [ok],
        "format as a boolean": {**ok, "format": True, "machines": {}},
    }


CASES = [
    "orphan named ../",
    "orphan named by absolute path",
    "orphan named /etc",
    "name ending in a newline",
    "unknown record field",
    "unknown top-level key",
    "kind that is no kind",
    "box that is a path",
    "lab id that is a path",
    "machines not a mapping",
    "not an object",
    "format as a boolean",
]


@pytest.mark.parametrize("case", CASES)
def test_destroy_refuses_a_state_file_off_the_schema(
    case: str, lab: Path, standin: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_state(lab, crafted_states(lab, standin)[case])
    assert main(["destroy"]) == 1
    err = capsys.readouterr().err
    assert "is corrupt or was not written by labctl" in err
    assert "hint: labctl will not act on it" in err
    assert intact(standin)
    assert (lab / ".labctl" / "state.json").exists()  # kept for the user to look at


def test_paths_in_valid_fields_are_never_removed(lab: Path, standin: Path) -> None:
    # Fields that hold text (the console log, the domain's name) may say anything: nothing reads
    # a path to remove from them. destroy succeeds and the stand-in stays.
    record = {"kind": "vm", "console_log": str(standin), "domain": escape(lab, standin), "container": "/etc"}
    write_state(lab, {"format": FORMAT, "lab_id": lab_id(), "machines": {"web": record}})
    assert main(["destroy"]) == 0
    assert intact(standin)
    assert not (lab / ".labctl").exists()


def test_a_link_in_the_data_directory_is_removed_as_a_link(lab: Path, standin: Path) -> None:
    machine_dir = lab.parent / "home" / "labs" / lab_id() / "vm" / "web"
    machine_dir.parent.mkdir(parents=True)
    machine_dir.symlink_to(standin, target_is_directory=True)
    assert main(["destroy"]) == 0
    assert intact(standin)
    assert not machine_dir.parent.parent.exists()


def test_a_linked_directory_above_is_refused(
    lab: Path, standin: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # data/<id>/vm -> the stand-in's parent: data/<id>/vm/web would be the stand-in itself.
    data = lab.parent / "home" / "labs" / lab_id()
    data.mkdir(parents=True)
    (standin.parent / "web").mkdir()
    (standin.parent / "web" / "precious").write_text("keep me\n")
    (data / "vm").symlink_to(standin.parent, target_is_directory=True)
    assert main(["destroy"]) == 1
    assert "refusing to remove" in capsys.readouterr().err
    assert intact(standin.parent / "web")


# -- who owns .labctl/ --------------------------------------------------------------------------


def test_a_linked_state_directory_is_refused(
    lab: Path, standin: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (standin / "state.json").write_text(json.dumps({"format": FORMAT, "lab_id": lab_id(), "machines": {}}))
    (lab / ".labctl").symlink_to(standin, target_is_directory=True)
    assert main(["destroy"]) == 1
    err = capsys.readouterr().err
    assert "is not a directory (a symbolic link or a file)" in err
    assert intact(standin)
    assert sorted(p.name for p in standin.iterdir()) == ["precious", "state.json"]


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root")
@pytest.mark.parametrize("which", ["dir", "file"])
def test_state_owned_by_another_user_is_refused(
    which: str, lab: Path, standin: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_state(lab, {"format": FORMAT, "lab_id": lab_id(), "machines": {}})
    os.chown(path.parent if which == "dir" else path, 65534, 65534)
    assert main(["destroy"]) == 1
    err = capsys.readouterr().err
    assert "belongs to uid 65534, not to uid" in err
    assert path.exists()
    assert intact(standin)


@pytest.mark.parametrize(
    ("which", "mode"), [("dir", 0o770), ("dir", 0o757), ("file", 0o660), ("file", 0o602)]
)
def test_state_others_can_write_is_refused(
    which: str, mode: int, lab: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_state(lab, {"format": FORMAT, "lab_id": lab_id(), "machines": {}})
    (path.parent if which == "dir" else path).chmod(mode)
    assert main(["destroy"]) == 1
    assert "can be changed by other users" in capsys.readouterr().err
    assert path.exists()


def test_a_linked_state_file_is_refused(lab: Path, standin: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (standin / "state.json").write_text(json.dumps({"format": FORMAT, "lab_id": lab_id(), "machines": {}}))
    (lab / ".labctl").mkdir(mode=0o700)
    (lab / ".labctl" / "state.json").symlink_to(standin / "state.json")
    assert main(["destroy"]) == 1
    assert "it is a symbolic link" in capsys.readouterr().err
    assert intact(standin)


def test_the_lock_is_never_opened_through_a_link(lab: Path, standin: Path) -> None:
    (lab / ".labctl").mkdir(mode=0o700)
    (lab / ".labctl" / "lock").symlink_to(standin / "precious")
    state = LabState(lab, "trap-0123456789ab")
    with pytest.raises(StateError, match="lock is a symbolic link"), state.lock():
        pass
    assert intact(standin)  # neither truncated nor written with a pid
    (lab / ".labctl" / "lock").unlink()
    (lab / ".labctl" / "lock").symlink_to(standin / "new")  # a dangling link: O_CREAT would make it
    with pytest.raises(StateError, match="lock is a symbolic link"), state.lock():
        pass
    assert not (standin / "new").exists()


# -- the helper every removal goes through --------------------------------------------------


def test_removable_keeps_removals_inside_their_roots(tmp_path: Path, standin: Path) -> None:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "link").symlink_to(standin, target_is_directory=True)
    assert removable(root / "sub", root) == root / "sub"
    assert removable(root, root) == root
    assert removable(root / "link", root) == root / "link"  # the link itself
    for outside in (
        root / ".." / "victim",
        root / "sub" / ".." / ".." / "victim",
        root / "link" / "precious",  # through the link
        standin,
        Path("/etc"),
        Path("/"),
    ):
        with pytest.raises(LabctlError, match="refusing to remove"):
            removable(outside, root)


def test_a_root_that_is_a_link_protects_nothing_under_it(tmp_path: Path, standin: Path) -> None:
    root = tmp_path / "root"
    root.symlink_to(standin, target_is_directory=True)
    with pytest.raises(LabctlError, match="refusing to remove"):
        remove_tree(root / "precious", root)
    remove_tree(root, root)  # removes the link only
    assert not root.is_symlink()
    assert intact(standin)


def test_labctl_home_and_above_are_never_removable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("LABCTL_HOME", str(home))
    for guarded in (home, home / "labs", tmp_path, Path("/")):
        with pytest.raises(LabctlError, match="refusing to remove"):
            removable(guarded, guarded)
