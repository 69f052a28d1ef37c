"""The CLI as a user meets it: help, version, init, status before up, exit codes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from tests_support import CliResult

from labctl import __version__
from labctl.cli import VERBS


def test_help_lists_every_verb(cli: Callable[..., CliResult]) -> None:
    result = cli("--help")
    assert result.returncode == 0
    for verb in VERBS:
        assert verb in result.stdout


def test_version(cli: Callable[..., CliResult]) -> None:
    result = cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"labctl {__version__}"


def test_no_verb_is_a_usage_error(cli: Callable[..., CliResult]) -> None:
    assert cli().returncode == 2


def test_unknown_verb_is_a_usage_error(cli: Callable[..., CliResult]) -> None:
    result = cli("frobnicate")
    assert result.returncode == 2
    assert "invalid choice: 'frobnicate'" in result.stderr


def test_init_writes_a_labfile_that_validates_and_refuses_to_overwrite(
    labdir: Path, cli: Callable[..., CliResult]
) -> None:
    first = cli("init", cwd=labdir)
    assert first.returncode == 0, first.stderr
    text = (labdir / "labfile.yml").read_text()
    assert "name: lab" in text and "kind: vm" in text and "kind: lxc" in text and "kind: ns" in text
    checked = cli("validate", cwd=labdir)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith("ok: lab lab: 1 vm, 1 lxc, 1 ns; 1 network")
    again = cli("init", cwd=labdir)
    assert again.returncode == 2
    assert "already exists; labctl init never overwrites a labfile" in again.stderr
    assert (labdir / "labfile.yml").read_text() == text


def test_init_rejects_a_bad_name(labdir: Path, cli: Callable[..., CliResult]) -> None:
    result = cli("init", "--name", "Not Valid", cwd=labdir)
    assert result.returncode == 2
    assert not (labdir / "labfile.yml").exists()


def test_status_before_up_says_not_created(labdir: Path, cli: Callable[..., CliResult]) -> None:
    (labdir / "labfile.yml").write_text(
        "name: s\nmachines: {a: {kind: ns}, b: {kind: lxc, box: debian-12}}\n"
    )
    result = cli("status", "--json", cwd=labdir)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["lab"] == "s"
    assert [(m["name"], m["state"]) for m in data["machines"]] == [("a", "not created"), ("b", "not created")]
    table = cli("status", cwd=labdir)
    assert "not created" in table.stdout
    assert not (labdir / ".labctl").exists()  # looking creates nothing


def test_invalid_labfile_errors_show_no_traceback(labdir: Path, cli: Callable[..., CliResult]) -> None:
    (labdir / "labfile.yml").write_text("machines: {a: {kind: ns, memory: lots}}\n")
    for verb in ("validate", "status", "up", "destroy"):
        result = cli(verb, cwd=labdir)
        assert result.returncode == 2, verb
        assert (
            "labfile.yml:1:34: machines.a.memory: expected a size like 512M or 2G, got 'lots'"
            in result.stderr
        )
        assert "Traceback" not in result.stderr
    assert not (labdir / ".labctl").exists()


def test_unknown_machine_name_is_a_usage_error(labdir: Path, cli: Callable[..., CliResult]) -> None:
    (labdir / "labfile.yml").write_text("machines: {a: {kind: ns}}\n")
    result = cli("status", "nope", cwd=labdir)
    assert result.returncode == 2
    assert "no machine named nope" in result.stderr


@pytest.mark.parametrize("argv", [["exec", "a"], ["exec", "a", "--"]])
def test_exec_without_a_command(labdir: Path, cli: Callable[..., CliResult], argv: list[str]) -> None:
    (labdir / "labfile.yml").write_text("machines: {a: {kind: ns}}\n")
    result = cli(*argv, cwd=labdir)
    assert result.returncode == 2
    assert "no command given" in result.stderr


def test_global_options_work_before_and_after_the_verb(labdir: Path, cli: Callable[..., CliResult]) -> None:
    (labdir / "other.yml").write_text("name: other\nmachines: {a: {kind: ns}}\n")
    before = cli("-f", "other.yml", "validate", cwd=labdir)
    after = cli("validate", "-f", "other.yml", "--json", cwd=labdir)
    assert before.returncode == after.returncode == 0
    assert json.loads(after.stdout)["lab"] == "other"
