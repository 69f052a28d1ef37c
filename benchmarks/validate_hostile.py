"""How long `labctl validate` takes on the worst labfiles it accepts or refuses (issue 18 item
12: every input answered in under 2 s), against validating labfile.example.yml.

Each case is written to a temporary directory and validated in a fresh process; the table shows
the exit code (0 or 2 is right, anything else is a crash), the median wall time, the ratio to the
example and whether it is within the 2 s target.

    .venv/bin/python benchmarks/validate_hostile.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGET_MS = 2000.0


def cases() -> dict[str, str]:
    machines_many_nets = "".join(
        f"  m{i}: {{kind: ns, networks: [{', '.join(f'n{j}' for j in range(0, 200, 5))}]}}\n"
        for i in range(240)
    )
    bomb = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}" if i > 1 else "*a"] * 9) + "]\n" for i in range(1, 30)
    )
    return {
        "1 MiB of comments": "#" * (1024 * 1024 - 40) + "\nmachines: {web: {kind: ns}}\n",
        "49,000 values": "machines: {web: {kind: ns}}\nx: [" + ",".join(["1"] * 49_000) + "]\n",
        "60,000 values": "machines: {web: {kind: ns}}\nx: [" + ",".join(["1"] * 60_000) + "]\n",
        "alias bomb (9^30)": bomb,
        "recursive alias": "machines:\n  a: &x [*x]\n",
        "50 levels of nesting": "x: " + "[" * 50 + "]" * 50 + "\nmachines: {web: {kind: ns}}\n",
        "5,000-digit numbers": "machines:\n"
        + "".join(f"  m{i}: {{kind: ns, cpus: {'9' * 5000}}}\n" for i in range(150)),
        "/8 and 200 networks x 240 machines": "networks:\n  big: {cidr: 11.0.0.0/8}\n"
        + "".join(f"  n{j}: {{cidr: 172.{16 + j // 256}.{j % 256}.0/24}}\n" for j in range(200))
        + "machines:\n"
        + machines_many_nets,
    }


def wall_ms(argv: list[str], cwd: Path, runs: int) -> tuple[int, float]:
    code = subprocess.run(argv, cwd=cwd, capture_output=True, check=False).returncode
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, cwd=cwd, capture_output=True, check=False)
        times.append((time.perf_counter() - started) * 1000)
    return code, statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    labctl = [sys.executable, "-m", "labctl", "validate"]
    code, baseline = wall_ms([*labctl, "-f", "labfile.example.yml"], REPO, args.runs)
    print(f"{'labfile':<38} {'exit':>4} {'ms':>8} {'x example':>10} {'target':>7}")
    print(f"{'labfile.example.yml':<38} {code:>4} {baseline:8.1f} {1.0:10.2f}")
    with tempfile.TemporaryDirectory(prefix="validate-hostile-") as tmp:
        for index, (name, text) in enumerate(cases().items()):
            lab = Path(tmp) / f"lab{index}"
            lab.mkdir()
            (lab / "labfile.yml").write_text(text)
            code, ms = wall_ms(labctl, lab, args.runs)
            verdict = "ok" if ms <= TARGET_MS and code in (0, 2) else "OVER" if code in (0, 2) else "CRASH"
            print(f"{name:<38} {code:>4} {ms:8.1f} {ms / baseline:10.2f} {verdict:>7}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
