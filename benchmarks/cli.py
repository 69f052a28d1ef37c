"""Start-up cost of the CLI: wall time of `labctl --help`, `validate` and `status` on the example,
against `python3 -c pass`, as milliseconds and ratios. Target: each at most 150 ms on the CI host.

    .venv/bin/python benchmarks/cli.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGET_MS = 150.0


def wall_ms(argv: list[str], runs: int) -> float:
    """Median wall time over `runs`, after one warm-up run (page cache, .pyc files)."""
    subprocess.run(argv, cwd=REPO, capture_output=True, check=False)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, cwd=REPO, capture_output=True, check=False)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    labctl = [sys.executable, "-m", "labctl"]
    example = ["-f", str(REPO / "labfile.example.yml")]
    baseline = wall_ms([sys.executable, "-c", "pass"], args.runs)
    print(f"{'command':<28} {'ms':>8} {'x python':>9} {'target':>8}")
    print(f"{'python3 -c pass':<28} {baseline:8.1f} {1.0:9.2f}")
    for name, argv in [
        ("labctl --help", [*labctl, "--help"]),
        ("labctl validate", [*labctl, *example, "validate"]),
        ("labctl status", [*labctl, *example, "status"]),
    ]:
        ms = wall_ms(argv, args.runs)
        verdict = "ok" if ms <= TARGET_MS else "OVER"
        print(f"{name:<28} {ms:8.1f} {ms / baseline:9.2f} {verdict:>8}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
