"""The bench and report verbs' command lines: bad input is refused before anything runs."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

from tests_support import CliResult

DATA = Path(__file__).resolve().parent.parent / "data" / "bench"


def test_bench_refuses_zero_repeats_and_names_with_compare(
    cli: Callable[..., CliResult], labdir: Path
) -> None:
    zero = cli("bench", "--repeat", "0", cwd=labdir)
    assert zero.returncode == 2 and "--repeat" in zero.stderr
    both = cli("bench", "--compare", "debian-12", "web", cwd=labdir)
    assert both.returncode == 2 and "not both" in both.stderr
    kinds = cli("bench", "--compare", "debian-12", "--kinds", "docker", cwd=labdir)
    assert kinds.returncode == 2 and "docker" in kinds.stderr


def test_report_from_a_directory_and_from_the_newest_results(
    cli: Callable[..., CliResult], labdir: Path
) -> None:
    recorded = sorted(DATA.glob("results-*.json"))[-1]
    newest = labdir / "bench-results" / "20260101-000000"
    newest.mkdir(parents=True)
    shutil.copy(recorded, newest / "results.json")
    result = cli("report", cwd=labdir)
    assert result.returncode == 0, result.stderr
    assert {p.name for p in newest.iterdir()} == {"results.json", "report.md", "report.html", "chart.svg"}
    out = labdir / "elsewhere"
    assert cli("report", str(newest), "--out", str(out), cwd=labdir).returncode == 0
    assert (out / "report.html").is_file()


def test_report_refuses_what_is_not_a_results_file(cli: Callable[..., CliResult], labdir: Path) -> None:
    missing = cli("report", cwd=labdir)
    assert missing.returncode == 2 and "labctl bench" in missing.stderr
    (labdir / "x.json").write_text(json.dumps({"format": 99}))
    wrong = cli("report", "x.json", cwd=labdir)
    assert wrong.returncode == 2 and "not a labctl bench results file" in wrong.stderr
