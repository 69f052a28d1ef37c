"""The report's content as plain strings, shared by the Markdown and HTML templates."""

from __future__ import annotations

import datetime
from typing import Any

from labctl.bench.stats import Ratio, Summary
from labctl.report import charts, literature, narrative
from labctl.report.analysis import GROUPS, Analysis, MetricResult, describe_target, finite, level_label


def fmt(value: float | None, digits: int = 3) -> str:
    if not finite(value):
        return "–"
    assert value is not None
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def fmt_interval(low: float | None, high: float | None) -> str:
    return f"[{fmt(low)}, {fmt(high)}]" if finite(low) and finite(high) else "–"


def fmt_ratio(ratio: Ratio | None) -> str:
    return f"{fmt(ratio.value)}× {fmt_interval(ratio.low, ratio.high)}" if ratio else "–"


def _mib(value: Any) -> str:
    return f"{value / 2**20:.0f} MiB" if isinstance(value, int | float) else "–"


def _seconds(value: Any) -> str:
    return f"{value:.1f} s" if isinstance(value, int | float) else "–"


def headline(analysis: Analysis) -> dict[str, Any]:
    groups = [g for g in GROUPS if any(m.metric["group"] == g for m in analysis.metrics)]
    costs = analysis.data.get("costs", {})
    rows = []
    for target in analysis.targets:
        cost = costs.get(target["name"], {})
        is_host = target["kind"] == "host"
        rows.append(
            {
                "target": target["name"],
                "level": level_label(target),
                "what": describe_target(target),
                "cells": [
                    "1×" if is_host else f"{fmt(analysis.group_ratio(target['name'], g))}×" for g in groups
                ],
                "startup": "–" if is_host else _seconds(cost.get("startup_s")),
                "memory": "–" if is_host else _mib(cost.get("idle_memory_bytes")),
            }
        )
    rows += [
        {
            "target": published["system"],
            "level": published["level"],
            "what": "published, not measured here",
            "cells": [published.get(g, "–") for g in groups],
            "startup": "–",
            "memory": "–",
        }
        for published in literature.HEADLINES
    ]
    return {"groups": [GROUPS[g] for g in groups], "rows": rows}


def metric_view(result: MetricResult, analysis: Analysis) -> dict[str, Any]:
    metric = result.metric
    levels = {t["name"]: t["level"] for t in analysis.targets}
    rows = []
    bars = []
    for cell in result.cells:
        summary: Summary | None = cell.summary
        rows.append(
            {
                "target": cell.target,
                "median": fmt(summary.median) if summary else "–",
                "interval": fmt_interval(summary.low, summary.high) if summary else "–",
                "cv": f"{100 * summary.cv:.1f}%" if summary else "–",
                "n": str(summary.n) if summary else "0",
                "ratio": "1× (baseline)" if cell.target == "host" else fmt_ratio(cell.ratio),
            }
        )
        if cell.ratio:
            bars.append(
                charts.Bar(
                    cell.target, cell.ratio.value, cell.ratio.low, cell.ratio.high, levels[cell.target]
                )
            )
    published = [
        {
            "system": p.system,
            "benchmark": p.benchmark,
            "relative": f"{p.relative:.2f}×" if p.relative is not None else "no figure",
            "statement": p.statement,
        }
        for p in literature.published_for(metric["name"])
    ]
    return {
        "name": metric["name"],
        "title": metric["title"],
        "unit": metric["unit"],
        "direction": "higher is better" if metric["higher_is_better"] else "lower is better",
        "rows": rows,
        "published": published,
        "svg": charts.chart(metric["title"], [("", bars)]) if bars else "",
    }


def overview_svg(analysis: Analysis) -> str:
    levels = {t["name"]: t["level"] for t in analysis.targets}
    groups = []
    for result in analysis.metrics:
        bars = [
            charts.Bar(c.target, c.ratio.value, c.ratio.low, c.ratio.high, levels[c.target])
            for c in result.cells
            if c.ratio
        ]
        if bars:
            groups.append((result.metric["title"], bars))
    return charts.chart("Relative performance by workload and target (host = 1)", groups, width=760)


def build(analysis: Analysis) -> dict[str, Any]:
    data = analysis.data
    sections = []
    for group, label in GROUPS.items():
        metrics = [metric_view(m, analysis) for m in analysis.metrics if m.metric["group"] == group]
        if metrics:
            sections.append(
                {"title": label, "paragraph": narrative.paragraph(group, analysis), "metrics": metrics}
            )
    return {
        "generated": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "suite": data["suite"],
        "repeats": data["repeats"],
        "seconds_per_run": data.get("seconds_per_run"),
        "status": data["status"],
        "started": data.get("started"),
        "finished": data.get("finished") or "–",
        "stats_method": data.get("stats_method", ""),
        "tcg_warning": narrative.tcg_warning(analysis),
        "headline": headline(analysis),
        "sections": sections,
        "targets": [
            {**t, "level_label": level_label(t), "what": describe_target(t)} for t in analysis.targets
        ],
        "fingerprint": fingerprint_rows(data),
        "boxes": data["fingerprint"].get("boxes", []),
        "citation": literature.CITATION,
        "notes": data.get("notes", []),
        "errors": data.get("errors", []),
    }


def fingerprint_rows(data: dict[str, Any]) -> dict[str, Any]:
    host = data["fingerprint"]["host"]
    rows = [
        ("kernel", host.get("kernel")),
        ("CPU", f"{host.get('cpu_model')} ({host.get('cpu_count')} cores)"),
        ("memory", _mib(host.get("memory_bytes"))),
        ("KVM usable", f"{host.get('kvm_usable')}: {host.get('kvm_detail')}"),
    ]
    rows += [(name, version or "not installed") for name, version in host.get("versions", {}).items()]
    targets = [
        {
            "name": name,
            "kernel": t.get("kernel") or "–",
            "clocksource": t.get("clocksource") or "–",
            "accel": t.get("accel") or "–",
            "devices": t.get("devices") or "–",
        }
        for name, t in data["fingerprint"].get("targets", {}).items()
    ]
    return {"host": [(k, str(v)) for k, v in rows], "targets": targets}
