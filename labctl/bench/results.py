"""The raw results file: every sample as it is measured, rewritten atomically after each one.

An interrupted or failed bench leaves a valid file with `"status": "interrupted"` (or
"running" if labctl itself was killed) holding every finished sample, so a report can still be
made from it. Warm-up samples are kept, marked, and left out of every statistic.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

from labctl import __version__
from labctl.bench.stats import METHOD
from labctl.bench.workloads import WORKLOADS, Suite
from labctl.errors import UsageError
from labctl.state import atomic_write

FORMAT = 1
NAME = "results.json"


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


class ResultsFile:
    def __init__(self, path: Path, suite: Suite, repeats: int, fingerprint: dict[str, Any]) -> None:
        self.path = path
        self.data: dict[str, Any] = {
            "format": FORMAT,
            "labctl": __version__,
            "suite": suite.name,
            "seconds_per_run": suite.seconds,
            "repeats": repeats,
            "warmup_rounds": 1,
            "stats_method": METHOD,
            "started": _now(),
            "finished": None,
            "status": "running",
            "fingerprint": {"host": fingerprint, "targets": {}},
            "metrics": [{**m.__dict__, "workload": w.name} for w in WORKLOADS for m in w.metrics],
            "targets": [],
            "costs": {},
            "samples": [],
            "errors": [],
            "notes": [],
        }

    def add_target(self, description: dict[str, Any], cost: dict[str, Any]) -> None:
        self.data["targets"].append(
            {k: description[k] for k in ("name", "kind", "level", "devices", "accel", "box")}
        )
        self.data["fingerprint"]["targets"][description["name"]] = description
        self.data["costs"][description["name"]] = cost
        self.save()

    def add_sample(
        self, target: str, workload: str, repeat: int, values: dict[str, float], **extra: Any
    ) -> None:
        for metric, value in values.items():
            self.data["samples"].append(
                {
                    "target": target,
                    "workload": workload,
                    "metric": metric,
                    "repeat": repeat,
                    "warmup": repeat == 0,
                    "value": value,
                    **extra,
                }
            )
        self.save()

    def add_error(self, target: str, workload: str, repeat: int, message: str) -> None:
        self.data["errors"].append(
            {"target": target, "workload": workload, "repeat": repeat, "message": message}
        )
        self.save()

    def note(self, text: str) -> None:
        if text not in self.data["notes"]:
            self.data["notes"].append(text)
            self.save()

    def finish(self, status: str) -> None:
        self.data["status"] = status
        self.data["finished"] = _now()
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, json.dumps(self.data, indent=1, ensure_ascii=False).encode() + b"\n")


def locate(path: Path | None, base: Path) -> Path:
    """A results file given as a file, a directory holding one, or the newest under base."""
    if path is None:
        candidates = sorted(base.glob(f"*/{NAME}"), key=lambda p: p.stat().st_mtime)
        if not candidates:
            raise UsageError(f"no results under {base}", "run labctl bench first, or name a results file")
        return candidates[-1]
    if path.is_dir():
        path = path / NAME
    if not path.is_file():
        raise UsageError(f"{path} does not exist", "name a results.json written by labctl bench")
    return path


def load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read results {path}: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT or "samples" not in data:
        raise UsageError(f"{path} is not a labctl bench results file (format {FORMAT})")
    return data
