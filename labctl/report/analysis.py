"""From raw samples to what the report shows: summaries, ratios to the host, the headline table."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from labctl.bench.stats import Ratio, Summary, geometric_mean, relative, summarise
from labctl.bench.targets import LEVELS

GROUPS = {
    "cpu": "CPU",
    "memory": "memory",
    "kernel": "kernel crossings",
    "disk": "disk",
    "network": "network",
}


@dataclass(frozen=True)
class Cell:
    target: str
    summary: Summary | None
    ratio: Ratio | None  # None for the host itself and for targets without host data


@dataclass(frozen=True)
class MetricResult:
    metric: dict[str, Any]  # name, title, unit, higher_is_better, group, workload
    cells: list[Cell]

    def ratio_of(self, target: str) -> Ratio | None:
        return next((c.ratio for c in self.cells if c.target == target), None)


@dataclass
class Analysis:
    data: dict[str, Any]
    targets: list[dict[str, Any]]
    metrics: list[MetricResult] = field(default_factory=list)

    @property
    def tcg_targets(self) -> list[str]:
        return [t["name"] for t in self.targets if t.get("accel") == "tcg"]

    @property
    def machine_targets(self) -> list[dict[str, Any]]:
        return [t for t in self.targets if t["kind"] != "host"]

    def group_ratio(self, target: str, group: str) -> float:
        """Geometric mean of the target's relative performance over the group's metrics."""
        ratios = [r.value for m in self.metrics if m.metric["group"] == group if (r := m.ratio_of(target))]
        return geometric_mean(ratios)


def samples_by(data: dict[str, Any]) -> dict[tuple[str, str], list[float]]:
    """Measured values per (target, metric); warm-up samples left out."""
    grouped: dict[tuple[str, str], list[float]] = defaultdict(list)
    for sample in data["samples"]:
        if not sample.get("warmup") and isinstance(sample.get("value"), int | float):
            grouped[(sample["target"], sample["metric"])].append(float(sample["value"]))
    return grouped


def analyse(data: dict[str, Any]) -> Analysis:
    grouped = samples_by(data)
    analysis = Analysis(data, list(data["targets"]))
    for metric in data["metrics"]:
        host = grouped.get(("host", metric["name"]), [])
        cells = []
        for target in analysis.targets:
            values = grouped.get((target["name"], metric["name"]), [])
            summary = summarise(values) if values else None
            ratio = None
            if values and host and target["kind"] != "host":
                ratio = relative(values, host, metric["higher_is_better"])
            cells.append(Cell(target["name"], summary, ratio))
        if any(c.summary for c in cells):
            analysis.metrics.append(MetricResult(metric, cells))
    return analysis


def level_label(target: dict[str, Any]) -> str:
    return str(LEVELS.get(target["level"], target["level"]))


def describe_target(target: dict[str, Any]) -> str:
    """'vm, emulated devices, TCG' style one-liner."""
    parts = [target["kind"]]
    if target.get("devices"):
        parts.append(f"{target['devices']} devices")
    if target.get("accel"):
        parts.append(str(target["accel"]).upper())
    return ", ".join(parts)


def finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)
