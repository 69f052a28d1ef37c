"""Every course lab of labs/, as a student meets it: copied with `labctl init --lab`, brought up,
its checks failing exactly where lab.yml says the student has to act, its solution applied, every
check passing, and destroyed without a trace.

Parametrized over the directories of labs/, so a lab added there is tested without a line here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from test_containers import host_traces, labctl
from test_up_faults import assert_nothing_left

from labctl import catalogue
from labctl.box import Box
from labctl.labfile import load_lab
from labctl.labfile.models import Lab

pytestmark = pytest.mark.integration

LABS = Path(__file__).resolve().parents[2] / "labs"
UP_TIMEOUT = 1800  # seconds; a lab with VMs boots them under TCG here
SOLVE_TIMEOUT = 1800


@pytest.mark.parametrize("name", catalogue.names(LABS))
def test_course_lab_fails_before_and_passes_after_its_solution(
    name: str, tmp_path: Path, debian_box: Box
) -> None:
    workdir = tmp_path / name
    copied = labctl(tmp_path, "init", "--lab", name, str(workdir))
    assert copied.returncode == 0, copied.stdout + copied.stderr
    lab = load_lab(str(workdir / "labfile.yml"))
    fail_before = set(catalogue.read_metadata(workdir / "lab.yml")[2])
    assert not any(host_traces(lab).values()), "a lab of this directory exists already"
    try:
        _lesson(workdir, lab, fail_before)
    except BaseException:
        labctl(workdir, "destroy")  # best effort: the failure above is the one to report
        raise
    assert_nothing_left(workdir, lab)


def _lesson(workdir: Path, lab: Lab, fail_before: set[str]) -> None:
    up = labctl(workdir, "up", timeout=UP_TIMEOUT)
    assert up.returncode == 0, f"labctl up failed:\n{up.stdout}{up.stderr}"

    before = _checks(workdir)
    failing = {check["name"] for check in before["checks"] if not check["passed"]}
    assert failing == fail_before, (
        f"right after up, the failing checks should be exactly lab.yml's fail_before\n"
        f"  failing but not in fail_before: {sorted(failing - fail_before)}\n"
        f"  in fail_before but passing: {sorted(fail_before - failing)}\n" + _table(workdir)
    )
    assert {check["name"] for check in before["checks"]} == {check.name for check in lab.checks}

    solved = _solve(workdir)
    assert solved.returncode == 0, (
        f"solution/solve exited {solved.returncode}:\n{solved.stdout}{solved.stderr}"
    )

    after = _checks(workdir)
    still = [check["name"] for check in after["checks"] if not check["passed"]]
    assert not still and after["passed"] == len(lab.checks), (
        f"after solution/solve these checks still fail: {still}\n"
        f"solve said:\n{solved.stdout}{solved.stderr}\n" + _table(workdir)
    )


def _checks(workdir: Path) -> dict[str, Any]:
    """`labctl --json check`: its exit code must agree with what it reports."""
    result = labctl(workdir, "--json", "check")
    assert result.returncode in (0, 1), f"labctl check exited {result.returncode}:\n{result.stderr}"
    report: dict[str, Any] = json.loads(result.stdout)
    assert result.returncode == (1 if report["failed"] else 0), result.stdout + result.stderr
    return report


def _table(workdir: Path) -> str:
    """What a student would see: the check table with every failure's detail, and labctl's status."""
    checked = labctl(workdir, "check", "--verbose")
    status = labctl(workdir, "status")
    return f"labctl check:\n{checked.stdout}{checked.stderr}\nlabctl status:\n{status.stdout}{status.stderr}"


def _solve(workdir: Path) -> subprocess.CompletedProcess[str]:
    """solution/solve as the lab's README has a student run it: from the lab's directory, with
    the labctl under test first on PATH."""
    bin_dir = Path(sys.executable).parent
    assert (bin_dir / "labctl").exists(), f"no labctl next to {sys.executable}: install labctl in this venv"
    env = {**os.environ, "NO_COLOR": "1", "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(
        [str(workdir / "solution" / "solve")],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=SOLVE_TIMEOUT,
        check=False,
    )
