"""How long the quick comparison suite takes on this host, and what it measured.

Runs `labctl bench --compare BOX --suite quick` (host, ns, lxc, vm-paravirtual, vm-emulated; the
comparison lab is created and destroyed by labctl), then prints the wall time against the
20-minute budget, the machines' start-up times and each target's relative performance per
workload (host = 1). The results and reports stay in --out.

    .venv/bin/python benchmarks/bench_quick.py [--box debian-12] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUDGET_S = 20 * 60


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--box", default="debian-12")
    parser.add_argument("--out", type=Path, default=Path(tempfile.mkdtemp(prefix="bench-quick-")))
    args = parser.parse_args()
    labctl = [sys.executable, "-m", "labctl"]
    started = time.monotonic()
    bench = subprocess.run(
        [*labctl, "bench", "--compare", args.box, "--suite", "quick", "--out", str(args.out)], check=False
    )
    elapsed = time.monotonic() - started
    if bench.returncode != 0:
        print(f"labctl bench failed (exit {bench.returncode}) after {elapsed:.0f} s")
        return 1
    subprocess.run([*labctl, "report", str(args.out)], check=True)
    print(
        f"quick suite: {elapsed / 60:.1f} min (budget {BUDGET_S / 60:.0f} min, ratio {elapsed / BUDGET_S:.2f})"
    )
    print_ratios(args.out / "results.json")
    print(f"report: {args.out / 'report.html'}")
    return 0 if elapsed <= BUDGET_S else 1


def print_ratios(path: Path) -> None:
    from labctl.report.analysis import analyse

    data = json.loads(path.read_text())
    analysis = analyse(data)
    names = [t["name"] for t in analysis.targets if t["kind"] != "host"]
    print(f"{'metric':<16}" + "".join(f"{n:>16}" for n in names))
    for metric in analysis.metrics:
        cells = [metric.ratio_of(n) for n in names]
        print(
            f"{metric.metric['name']:<16}"
            + "".join(f"{c.value:>15.3f}x" if c else f"{'-':>16}" for c in cells)
        )
    startup = {n: data["costs"].get(n, {}).get("startup_s") for n in names}
    print("start-up (s):   " + "".join(f"{v if v is not None else '-':>16}" for v in startup.values()))


if __name__ == "__main__":
    sys.exit(main())
