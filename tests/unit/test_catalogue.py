"""The course lab catalogue: `labctl labs`, `labctl init --lab`, lab.yml, and every shipped lab."""

from __future__ import annotations

import json
import os
import stat
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from tests_support import CliResult

from labctl import catalogue
from labctl.errors import LabfileError, UsageError
from labctl.labfile import load_lab

REPO = Path(__file__).resolve().parents[2]
LABS = REPO / "labs"
SHIPPED = catalogue.names(LABS)


def test_the_catalogue_is_the_repository_labs_directory() -> None:
    assert catalogue.catalogue_dir() == LABS
    assert "overlayfs" in SHIPPED


def test_labs_lists_every_shipped_lab_with_its_kinds(cli: Callable[..., CliResult]) -> None:
    result = cli("labs")
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.split("\n\n")[0].splitlines()
    assert header.split() == ["NAME", "KINDS", "~UP", "SUMMARY"]
    assert [row.split()[0] for row in rows] == SHIPPED
    overlay = next(row for row in rows if row.startswith("overlayfs "))
    assert overlay.split()[1] == "ns,lxc"
    assert catalogue.read_metadata(LABS / "overlayfs" / "lab.yml")[0] in overlay
    assert "labctl init --lab NAME" in result.stdout


def test_labs_json_is_the_metadata_of_every_lab(cli: Callable[..., CliResult]) -> None:
    result = cli("--json", "labs")
    assert result.returncode == 0, result.stderr
    labs = json.loads(result.stdout)["labs"]
    assert [lab["name"] for lab in labs] == SHIPPED
    for lab in labs:
        summary, up_seconds, fail_before = catalogue.read_metadata(LABS / lab["name"] / "lab.yml")
        assert (lab["summary"], lab["up_seconds"], lab["fail_before"]) == (
            summary,
            up_seconds,
            list(fail_before),
        )
        kinds = {m.kind.value for m in load_lab(str(LABS / lab["name"] / "labfile.yml")).machines}
        assert set(lab["kinds"]) == kinds


def test_init_lab_copies_the_lab_and_says_what_to_do_next(
    tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    result = cli("init", "--lab", "overlayfs", "work", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    copy = tmp_path / "work"
    assert _tree(copy) == _tree(LABS / "overlayfs")
    assert os.access(copy / "solution" / "solve", os.X_OK)
    for step in ("cd work", "labctl up", "labctl check", "README.md"):
        assert step in result.stdout
    checked = cli("validate", cwd=copy)
    assert checked.returncode == 0, checked.stderr


def test_init_lab_defaults_to_a_directory_named_like_the_lab(
    tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    result = cli("init", "--lab", "overlayfs", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "overlayfs" / "labfile.yml").read_bytes() == (
        LABS / "overlayfs" / "labfile.yml"
    ).read_bytes()


def test_init_lab_into_an_empty_directory_is_fine(tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    (tmp_path / "empty").mkdir()
    result = cli("init", "--lab", "overlayfs", "empty", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "empty" / "lab.yml").is_file()


def test_init_lab_refuses_a_directory_that_is_not_empty(
    tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    target = tmp_path / "mine"
    target.mkdir()
    (target / "notes.txt").write_text("my notes\n")
    result = cli("init", "--lab", "overlayfs", "mine", cwd=tmp_path)
    assert result.returncode == 2
    assert "is not empty" in result.stderr and "Traceback" not in result.stderr
    assert sorted(p.name for p in target.iterdir()) == ["notes.txt"]


def test_init_lab_refuses_a_file_in_the_way(tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    (tmp_path / "taken").write_text("x")
    result = cli("init", "--lab", "overlayfs", "taken", cwd=tmp_path)
    assert result.returncode == 2
    assert "is not a directory" in result.stderr
    assert (tmp_path / "taken").read_text() == "x"


def test_init_with_an_unknown_lab_names_the_labs_there_are(
    tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    result = cli("init", "--lab", "overlay", cwd=tmp_path)
    assert result.returncode == 2
    assert "no course lab named 'overlay'; did you mean 'overlayfs'?" in result.stderr
    assert f"the labs are: {', '.join(SHIPPED)}" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["../overlayfs", "Overlayfs", "", "a/b", ".hidden"])
def test_init_refuses_a_lab_name_that_is_no_dns_label(
    name: str, tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    result = cli("init", "--lab", name, "dest", cwd=tmp_path)
    assert result.returncode == 2
    assert "is not a valid lab name" in result.stderr or "expected a lab name" in result.stderr
    assert not (tmp_path / "dest").exists()


def test_init_without_lab_keeps_writing_the_starter(labdir: Path, cli: Callable[..., CliResult]) -> None:
    result = cli("init", cwd=labdir)
    assert result.returncode == 0, result.stderr
    assert "kind: vm" in (labdir / "labfile.yml").read_text()
    stray = cli("init", "somewhere", cwd=labdir)
    assert stray.returncode == 2 and "goes with --lab only" in stray.stderr
    mixed = cli("init", "--lab", "overlayfs", "--name", "x", "dest", cwd=labdir)
    assert mixed.returncode == 2 and not (labdir / "dest").exists()


# -- copying: links, state, modes --------------------------------------------------------------
def _fake_catalogue(root: Path, outside: Path) -> Path:
    lab = root / "demo"
    (lab / "solution").mkdir(parents=True)
    (lab / "labfile.yml").write_text("name: demo\nmachines: {a: {kind: ns, namespaces: [mnt]}}\n")
    (lab / "lab.yml").write_text("summary: a demo\nup_seconds: 1\nfail_before: []\n")
    (lab / "solution" / "solve").write_text("#!/bin/sh\ntrue\n")
    (lab / "solution" / "solve").chmod(0o755)
    (lab / "data.txt").write_text("data\n")
    (lab / "data.txt").chmod(0o4666)  # setuid and world-writable: neither is carried over
    (lab / ".labctl").mkdir()
    (lab / ".labctl" / "state.json").write_text("{}")
    outside.write_text("a secret of the host\n")
    (lab / "secret").symlink_to(outside)
    (lab / "linked-dir").symlink_to(outside.parent, target_is_directory=True)
    return root


def test_copy_keeps_files_and_modes_but_never_links_or_state(tmp_path: Path) -> None:
    root = _fake_catalogue(tmp_path / "labs", tmp_path / "outside.txt")
    labfile = catalogue.copy("demo", tmp_path / "work", root)
    assert labfile == tmp_path / "work" / "labfile.yml"
    assert _tree(tmp_path / "work") == {
        "data.txt": b"data\n",
        "lab.yml": (root / "demo" / "lab.yml").read_bytes(),
        "labfile.yml": (root / "demo" / "labfile.yml").read_bytes(),
        "solution/": b"",
        "solution/solve": b"#!/bin/sh\ntrue\n",
    }
    assert stat.S_IMODE((tmp_path / "work" / "solution" / "solve").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "work" / "data.txt").stat().st_mode) == 0o644


def test_copy_refuses_a_target_inside_the_lab_itself(tmp_path: Path) -> None:
    root = _fake_catalogue(tmp_path / "labs", tmp_path / "outside.txt")
    with pytest.raises(UsageError, match="inside the catalogue's lab demo"):
        catalogue.copy("demo", root / "demo" / "solution" / "copy", root)
    assert not (root / "demo" / "solution" / "copy").exists()


def test_a_link_in_the_catalogue_is_no_lab(tmp_path: Path) -> None:
    root = _fake_catalogue(tmp_path / "labs", tmp_path / "outside.txt")
    (root / "alias").symlink_to(root / "demo", target_is_directory=True)
    assert catalogue.names(root) == ["demo"]
    with pytest.raises(UsageError, match="no course lab named 'alias'"):
        catalogue.copy("alias", tmp_path / "work", root)


# -- lab.yml -----------------------------------------------------------------------------------
def test_lab_yml_problems_name_file_line_and_key_all_at_once(tmp_path: Path) -> None:
    path = tmp_path / "lab.yml"
    path.write_text(
        textwrap.dedent("""\
            summary: [not, text]
            up_seconds: soon
            fail_before: [ok-check, Bad_Name, ok-check]
            fail_befor: [typo]
            """)
    )
    with pytest.raises(LabfileError) as caught:
        catalogue.read_metadata(path)
    lines = str(caught.value).splitlines()
    assert lines == [
        f"{path}:1:10: summary: expected a one-line summary, got a list",
        f"{path}:2:13: up_seconds: expected the measured seconds of `labctl up`, such as 12, got text 'soon'",
        f"{path}:3:25: fail_before[1]: 'Bad_Name' is not a valid check name: use 1-63 lowercase letters, "
        "digits and hyphens, starting and ending with a letter or digit",
        f"{path}:3:35: fail_before[2]: 'ok-check' is listed twice",
        f"{path}:4:1: fail_befor: unknown key; did you mean 'fail_before'?",
    ]


def test_lab_yml_fail_before_names_checks_of_the_labfile(tmp_path: Path) -> None:
    path = tmp_path / "lab.yml"
    path.write_text("summary: s\nup_seconds: 2\nfail_before: [copy-up, copy-uq, gone]\n")
    assert catalogue.read_metadata(path)[2] == ("copy-up", "copy-uq", "gone")
    with pytest.raises(LabfileError) as caught:
        catalogue.read_metadata(path, ["copy-up", "whiteout"])
    assert str(caught.value).splitlines() == [
        f"{path}:3:24: fail_before[1]: 'copy-uq' is no check of the lab's labfile.yml; did you mean 'copy-up'?",
        f"{path}:3:33: fail_before[2]: 'gone' is no check of the lab's labfile.yml",
    ]


def test_labs_refuses_a_lab_whose_fail_before_is_no_check(tmp_path: Path) -> None:
    root = _fake_catalogue(tmp_path / "labs", tmp_path / "outside.txt")
    (root / "demo" / "lab.yml").write_text("summary: a demo\nup_seconds: 1\nfail_before: [nothing]\n")
    with pytest.raises(LabfileError, match="'nothing' is no check"):
        catalogue.load_all(root)


def test_a_lab_without_lab_yml_is_refused_by_name(tmp_path: Path) -> None:
    root = _fake_catalogue(tmp_path / "labs", tmp_path / "outside.txt")
    (root / "demo" / "lab.yml").unlink()
    with pytest.raises(LabfileError) as caught:
        catalogue.load_all(root)
    assert str(caught.value) == f"{root / 'demo' / 'lab.yml'}:1:1: missing: every course lab needs a lab.yml"


def test_lab_yml_needs_every_key(tmp_path: Path) -> None:
    path = tmp_path / "lab.yml"
    path.write_text("summary: two\n  lines\n")
    with pytest.raises(LabfileError) as caught:
        catalogue.read_metadata(path)
    message = str(caught.value)
    assert "up_seconds: missing; lab.yml needs summary, up_seconds, fail_before" in message
    assert "fail_before: missing" in message


@pytest.mark.parametrize("seconds", [0, -1, 1e9, True, ".nan"])
def test_lab_yml_up_seconds_is_a_plausible_measurement(tmp_path: Path, seconds: object) -> None:
    path = tmp_path / "lab.yml"
    path.write_text(f"summary: s\nup_seconds: {str(seconds).lower()}\nfail_before: []\n")
    with pytest.raises(LabfileError, match="up_seconds"):
        catalogue.read_metadata(path)


# -- every shipped lab -------------------------------------------------------------------------
@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_lab_is_complete_and_consistent(name: str) -> None:
    directory = catalogue.find(name, LABS)  # a DNS label, and a directory of the catalogue
    lab = load_lab(str(directory / "labfile.yml"))  # validates: raises with every problem
    assert lab.name == name
    fail_before = catalogue.read_metadata(directory / "lab.yml")[2]
    checks = [check.name for check in lab.checks]
    assert checks, f"{name}: the labfile has no checks"
    unknown = [check for check in fail_before if check not in checks]
    assert not unknown, f"{name}: fail_before names {unknown}, not checks of its labfile ({checks})"
    assert fail_before, f"{name}: no check fails before the student acts; what does the lesson prove?"
    solve = directory / "solution" / "solve"
    assert solve.is_file() and not solve.is_symlink(), f"{name}: solution/solve is missing"
    assert os.access(solve, os.X_OK), f"{name}: solution/solve is not executable"
    assert solve.read_text().startswith("#!"), f"{name}: solution/solve has no #! line"
    readme = directory / "README.md"
    assert readme.is_file(), f"{name}: README.md is missing"
    lesson = readme.read_text()
    assert len(lesson.split()) >= 200, f"{name}: README.md is too short to be a lesson"
    missing = [check for check in checks if check not in lesson]
    assert not missing, f"{name}: README.md never mentions the checks {missing}"
    assert not [p for p in directory.rglob("*") if p.is_symlink()], f"{name}: links are not copied"


def _tree(root: Path) -> dict[str, bytes]:
    """Every entry under root: directories as 'name/', files with their bytes."""
    entries: dict[str, bytes] = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        entries[relative + "/" if path.is_dir() else relative] = b"" if path.is_dir() else path.read_bytes()
    return entries
