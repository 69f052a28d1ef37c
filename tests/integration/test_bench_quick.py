"""The quick bench on this host, end to end through the CLI: host, ns, lxc and both VM profiles.

One run (about 10-15 minutes on the 2-core TCG CI host) feeds every assertion: results hold every
target and workload, the container's CPU rate matches the host's, the comparison lab is gone
afterwards, and report.html renders in headless Chromium to a screenshot.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests_support import CliResult

from labctl.bench.workloads import METRICS
from labctl.box import Box
from labctl.paths import labctl_home
from labctl.report.analysis import analyse

pytestmark = pytest.mark.integration

TARGETS = ["host", "ns", "lxc", "vm-paravirtual", "vm-emulated"]
RUN_TIMEOUT = 40 * 60


@pytest.fixture(scope="module")
def bench_run(
    debian_box: Box, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Any], CliResult]:
    from tests_support import run_labctl

    out = tmp_path_factory.mktemp("bench") / "results"
    before = set((labctl_home() / "bench").glob("lab-*"))
    kinds = ",".join(TARGETS[1:])  # the same targets on a KVM host too (vm-tcg is optional there)
    result = run_labctl(
        "bench", "--compare", debian_box.name, "--kinds", kinds, "--out", str(out), timeout=RUN_TIMEOUT
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = run_labctl("report", str(out))
    assert report.returncode == 0, report.stderr
    data = json.loads((out / "results.json").read_text())
    data["_leftover_labs"] = sorted(str(p) for p in set((labctl_home() / "bench").glob("lab-*")) - before)
    return out, data, result


def test_every_target_and_workload_is_measured(bench_run: tuple[Path, dict[str, Any], CliResult]) -> None:
    _, data, _ = bench_run
    assert data["status"] == "complete"
    assert [t["name"] for t in data["targets"]] == TARGETS
    measured = {(s["target"], s["metric"]) for s in data["samples"] if not s["warmup"]}
    missing = [(t, m) for t in TARGETS for m in METRICS if (t, m) not in measured]
    assert not missing, f"no samples for {missing}; errors: {data['errors']}"
    repeats = [s for s in data["samples"] if s["target"] == "ns" and s["metric"] == "cpu" and not s["warmup"]]
    assert len(repeats) == data["repeats"] == 3


def test_fingerprint_and_costs(bench_run: tuple[Path, dict[str, Any], CliResult]) -> None:
    _, data, _ = bench_run
    fingerprint = data["fingerprint"]
    assert fingerprint["host"]["versions"]["qemu"] and fingerprint["host"]["versions"]["runc"]
    assert fingerprint["boxes"][0]["sha256"]
    vms = [t for t in data["targets"] if t["kind"] == "vm"]
    assert {t["devices"] for t in vms} == {"paravirtual", "emulated"}
    assert all(t["accel"] in ("kvm", "tcg") for t in vms)
    for name in TARGETS[1:]:
        assert fingerprint["targets"][name]["clocksource"], name
        cost = data["costs"][name]
        assert cost["startup_s"] and cost["startup_s"] > 0, name
        assert cost["idle_memory_bytes"] and cost["idle_memory_bytes"] > 0, name


def test_container_cpu_matches_the_host(bench_run: tuple[Path, dict[str, Any], CliResult]) -> None:
    _, data, _ = bench_run
    cpu = next(m for m in analyse(data).metrics if m.metric["name"] == "cpu")
    ratio = cpu.ratio_of("ns")
    assert ratio is not None
    assert 0.9 <= ratio.value <= 1.1, f"ns CPU at {ratio.value:.3f}x the host"


def test_the_comparison_lab_is_gone(bench_run: tuple[Path, dict[str, Any], CliResult]) -> None:
    _, data, _ = bench_run
    assert data["_leftover_labs"] == []
    domains = subprocess.run(
        ["virsh", "-c", "qemu:///system", "list", "--all", "--name"], capture_output=True, text=True
    )
    assert "labctl-bench-" not in domains.stdout


def test_report_names_everything_and_warns_about_tcg(
    bench_run: tuple[Path, dict[str, Any], CliResult],
) -> None:
    out, data, _ = bench_run
    markdown = (out / "report.md").read_text()
    for target in TARGETS:
        assert f"| {target} |" in markdown
    for metric in METRICS.values():
        assert metric.title in markdown
    if any(t["accel"] == "tcg" for t in data["targets"]):
        assert "NOT the cost of KVM" in markdown


def test_report_renders_in_headless_chromium(
    bench_run: tuple[Path, dict[str, Any], CliResult],
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    out, _, _ = bench_run
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "install chromium (scripts/setup-host does)"
    png = tmp_path / "report.png"
    argv = [
        chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={png}", "--window-size=1280,2400",
        (out / "report.html").resolve().as_uri(),
    ]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert png.is_file() and png.stat().st_size > 20_000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    record_property("screenshot", str(png))
