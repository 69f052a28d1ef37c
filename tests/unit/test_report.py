"""Reports from results recorded on this project's CI host (real runs of labctl bench)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from labctl.bench.results import load
from labctl.bench.workloads import METRICS
from labctl.report import literature, write_reports
from labctl.report.analysis import GROUPS, analyse
from labctl.report.charts import Bar, chart

DATA = Path(__file__).resolve().parent.parent / "data" / "bench"
RECORDED = sorted(DATA.glob("results-*.json"))


@pytest.fixture(params=RECORDED, ids=[p.stem for p in RECORDED])
def results(request: pytest.FixtureRequest) -> dict[str, Any]:
    return load(request.param)


def test_recorded_results_are_there() -> None:
    assert RECORDED, "tests/data/bench/results-*.json: run labctl bench and save its results here"


def test_every_target_and_metric_is_analysed(results: dict[str, Any]) -> None:
    analysis = analyse(results)
    names = [t["name"] for t in results["targets"]]
    measured = {(s["target"], s["metric"]) for s in results["samples"] if not s["warmup"]}
    for metric in analysis.metrics:
        for cell in metric.cells:
            if (cell.target, metric.metric["name"]) in measured:
                assert cell.summary is not None and cell.summary.n >= 1
                if cell.target != "host" and ("host", metric.metric["name"]) in measured:
                    assert cell.ratio is not None and cell.ratio.low <= cell.ratio.value <= cell.ratio.high
    assert names[0] == "host"


def test_reports_name_every_target_metric_and_the_literature(results: dict[str, Any], tmp_path: Path) -> None:
    written = write_reports(results, tmp_path)
    assert sorted(p.name for p in written) == ["chart.svg", "report.html", "report.md"]
    markdown = (tmp_path / "report.md").read_text()
    html = (tmp_path / "report.html").read_text()
    for target in results["targets"]:
        assert f"| {target['name']} |" in markdown
        assert f"<td>{target['name']}</td>" in html
    for metric in {s["metric"] for s in results["samples"]}:
        title = next(m["title"] for m in results["metrics"] if m["name"] == metric)
        assert f"### {title}" in markdown
    assert "Felter" in markdown and "RC25482" in html
    assert "241.3 vs 290.8 GFLOPS" in markdown  # literature figures appear as published
    assert results["fingerprint"]["host"]["kernel"] in markdown


def test_docker_literature_row_sits_beside_ours_labelled_as_literature(
    results: dict[str, Any], tmp_path: Path
) -> None:
    write_reports(results, tmp_path)
    markdown = (tmp_path / "report.md").read_text()
    html = (tmp_path / "report.html").read_text()
    docker = "Docker (literature: Felter et al. 2015)"
    rows = [line for line in markdown.splitlines() if line.startswith(f"| {docker} |")]
    assert len(rows) == 1 and "published, not measured here" in rows[0]
    assert "0.5× latency with NAT" in rows[0] and "≈1× random IOPS (no overhead)" in rows[0]
    assert f"<td>{docker}</td>" in html
    assert "| KVM (literature: Felter et al. 2015) |" in markdown  # the KVM row stays
    # per-metric literature tables: the traced Docker figures, as the paper reports them
    assert "| Docker with NAT | TCP and UDP request-response round trip | 0.50× |" in markdown
    assert '"Docker introduces no overhead"' in markdown
    assert "NAT doubles the round-trip latency" in html


def test_every_published_figure_names_one_of_our_metrics_and_groups() -> None:
    assert {p.metric for p in literature.PUBLISHED} <= set(METRICS)
    assert {p.system.split()[0] for p in literature.DOCKER} == {"Docker"}
    for row in literature.HEADLINES:
        assert "literature" in row["system"]
        assert set(GROUPS) <= set(row)
    for p in literature.PUBLISHED:
        assert p.relative is None or 0 < p.relative <= 1


def test_html_is_self_contained_and_well_formed(results: dict[str, Any], tmp_path: Path) -> None:
    write_reports(results, tmp_path)
    html = (tmp_path / "report.html").read_text()
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in html and "<script" not in html

    class Checker(HTMLParser):
        svgs = 0

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            self.svgs += tag == "svg"

    checker = Checker()
    checker.feed(html)
    assert checker.svgs >= 1
    ET.fromstring((tmp_path / "chart.svg").read_text())  # valid XML, viewable on its own


def test_tcg_runs_carry_the_warning(results: dict[str, Any], tmp_path: Path) -> None:
    write_reports(results, tmp_path)
    markdown = (tmp_path / "report.md").read_text()
    has_tcg = any(t.get("accel") == "tcg" for t in results["targets"])
    assert ("NOT the cost of KVM" in markdown) is has_tcg


def test_names_from_results_are_escaped_in_html(results: dict[str, Any], tmp_path: Path) -> None:
    hostile = json.loads(json.dumps(results))
    hostile["notes"] = ["<script>alert(1)</script>"]
    hostile["fingerprint"]["host"]["cpu_model"] = "<img src=x onerror=alert(1)>"
    write_reports(hostile, tmp_path)
    html = (tmp_path / "report.html").read_text()
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;" in html


def test_chart_escapes_labels_and_uses_a_log_scale() -> None:
    svg = chart(
        "a <b>", [("", [Bar("x&y", 0.02, 0.01, 0.03, "isa-emulation"), Bar("c", 1.0, 0.9, 1.1, "os-level")])]
    )
    root = ET.fromstring(svg)
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "x&y" in texts and "a <b>" in texts
    assert "0.01" in texts and "1" in texts  # decades on the axis
