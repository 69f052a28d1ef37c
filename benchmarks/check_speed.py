"""How long `labctl check` takes on a container lab with 20 checks, against the 2 s target.

Brings up a lab of one LXC system container and two ns containers (one serving HTTP) on an
isolated network, runs `labctl check` on its 20 checks (commands, HTTP and TCP probes, on the
machines and on the host) several times, prints the median wall time and its ratio to the
target, then destroys the lab.

    .venv/bin/python benchmarks/check_speed.py [--rounds 5] [--subnet 10.231.77.0/24]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

TARGET_S = 2.0


def labfile(subnet: str) -> str:
    prefix = subnet.rsplit(".", 1)[0]
    web = f"{prefix}.10"
    checks = []
    for machine in ("sys", "cli", "web"):
        checks += [
            f"  - {{name: {machine}-hostname, on: {machine}, run: hostname, stdout: '^{machine}$'}}",
            f"  - {{name: {machine}-argv, on: {machine}, run: [cat, /etc/hostname]}}",
            f"  - {{name: {machine}-exit, on: {machine}, run: 'exit 3', exit: 3}}",
        ]
    for machine in ("sys", "cli"):
        checks += [
            f"  - {{name: {machine}-http, on: {machine}, http: {{url: 'http://{web}/hostname', body: web}}, retries: 20, interval: 250ms}}",
            f"  - {{name: {machine}-tcp-open, on: {machine}, tcp: {{host: {web}, port: 80}}}}",
            f"  - {{name: {machine}-tcp-closed, on: {machine}, tcp: {{host: {web}, port: 81, open: false}}}}",
        ]
    checks += [
        f"  - {{name: host-http, on: host, http: {{url: 'http://{web}/hostname'}}}}",
        f"  - {{name: host-tcp, on: host, tcp: {{host: {web}, port: 80}}}}",
        "  - {name: host-run, on: host, run: 'test -f labfile.yml'}",
        "  - {name: host-argv, on: host, run: ['true']}",
        "  - {name: host-exit, on: host, run: 'exit 1', exit: 1}",
    ]
    machines = textwrap.dedent(f"""\
        name: checkspeed
        networks:
          lan: {{cidr: {subnet}}}
        machines:
          sys: {{kind: lxc, box: debian-12, memory: 256M, networks: [lan]}}
          web:
            kind: ns
            box: debian-12
            command: [python3, -m, http.server, '80', --directory, /etc]
            networks: [{{name: lan, ip: {web}}}]
          cli: {{kind: ns, box: debian-12, networks: [lan]}}
        checks:
        """)
    return machines + "\n".join(checks[:20]) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--subnet", default="10.231.77.0/24", help="an unused /24 for the lab network")
    args = parser.parse_args()
    labctl = [sys.executable, "-m", "labctl"]
    with tempfile.TemporaryDirectory(prefix="check-speed-") as directory:
        labdir = Path(directory)
        (labdir / "labfile.yml").write_text(labfile(args.subnet))
        subprocess.run([*labctl, "up"], cwd=labdir, check=True, stdout=subprocess.DEVNULL)
        try:
            # The first round waits for the web server's start (retries); it is not counted.
            subprocess.run([*labctl, "check"], cwd=labdir, check=False, stdout=subprocess.DEVNULL)
            times = []
            for _ in range(args.rounds):
                started = time.monotonic()
                done = subprocess.run(
                    [*labctl, "--json", "check"], cwd=labdir, capture_output=True, text=True
                )
                times.append(time.monotonic() - started)
                report = json.loads(done.stdout)
                if done.returncode != 0:
                    failed = [c for c in report["checks"] if not c["passed"]]
                    print(f"checks failed: {failed}")
                    return 1
        finally:
            subprocess.run([*labctl, "destroy"], cwd=labdir, check=False, stdout=subprocess.DEVNULL)
    median = statistics.median(times)
    print(
        f"labctl check, {report['passed']} checks on 3 containers and the host: median {median:.2f} s "
        f"over {args.rounds} rounds (min {min(times):.2f}, max {max(times):.2f}); "
        f"target {TARGET_S:.0f} s, ratio {median / TARGET_S:.2f}"
    )
    return 0 if median <= TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
