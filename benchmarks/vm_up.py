"""labctl's overhead when it brings up VMs, beyond the guest's own boot.

`labctl up` is run as a user runs it (a fresh process, box already in the store). For one VM:
- up to SSH: the wall time of `labctl up` until SSH answers with the lab key (the wall time minus
  the first_boot phase, which waits for cloud-init's last stage), minus the guest's boot time as
  `systemd-analyze` reports it inside the guest. This is the issue's measure; target <= 1 s.
- up to ready: the same with cloud-init's final stage included (what `up` waits for).
- labctl's own work: CLI start, host checks, networks, define and QEMU start, i.e. everything but
  the guest's boot and the waits for it.
Then `labctl up` of 2 VMs against 1 (ideal ratio 1.0; on 2 shared cores and TCG expect more).
Prints numbers and ratios, asserts nothing. Needs root, libvirtd and the debian-12 box.

    .venv/bin/python benchmarks/vm_up.py [--box debian-12] [--devices paravirtual]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

from labctl import addressing, host
from labctl.labfile import load_lab
from labctl.labfile.models import Lab

TARGET_S = 1.0


def free_subnet() -> str:
    return addressing.free_subnet([dst for dst, _ in host.host_routes()], "10.150.0.0/15")


def write_lab(root: Path, count: int, box: str, devices: str, cidr: str) -> Lab:
    machines = "".join(
        f"  b{i}:\n    kind: vm\n    box: {box}\n    memory: 768M\n    devices: {devices}\n"
        for i in range(count)
    )
    root.mkdir(parents=True)
    text = f"name: vmbench{count}\nnetworks:\n  lan:\n    cidr: {cidr}\nmachines:\n{machines}"
    (root / "labfile.yml").write_text(textwrap.dedent(text))
    return load_lab(str(root / "labfile.yml"))


def labctl(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "labctl", "-f", str(root / "labfile.yml"), *args]
    proc = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise SystemExit(f"labctl {' '.join(args)} failed:\n{proc.stderr}")
    return proc


def guest_boot_seconds(root: Path, machine: str) -> float:
    """Kernel + initrd + userspace from systemd-analyze (retried while boot is still finishing)."""
    out = ""
    for _ in range(30):
        out = labctl(root, "exec", machine, "--", "systemd-analyze", "time").stdout
        found = re.search(r"=\s*(?:(\d+)min\s*)?([\d.]+)s", out)
        if found:
            return int(found.group(1) or 0) * 60 + float(found.group(2))
        time.sleep(2)
    raise SystemExit(f"systemd-analyze never reported a finished boot: {out!r}")


@dataclass
class Run:
    wall: float
    guest_boot: list[float]
    phases: list[dict[str, float]]


def measure(count: int, args: argparse.Namespace, work: Path) -> Run:
    root = work / f"lab{count}"
    lab = write_lab(root, count, args.box, args.devices, free_subnet())
    try:
        started = time.monotonic()
        labctl(root, "up", "--no-provision")
        wall = time.monotonic() - started
        guest = [guest_boot_seconds(root, m.name) for m in lab.machines]
        records = json.loads((root / ".labctl" / "state.json").read_text())["machines"]
        return Run(wall, guest, [records[m.name]["phases"] for m in lab.machines])
    finally:
        # Also after a failed up: a benchmark must not leave VMs or networks behind.
        subprocess.run(
            [sys.executable, "-m", "labctl", "-f", str(root / "labfile.yml"), "destroy"], check=False
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--box", default="debian-12")
    parser.add_argument("--devices", default="paravirtual", choices=["paravirtual", "emulated"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vm-up-") as temp:
        one = measure(1, args, Path(temp))
        report_one(one)
        two = measure(2, args, Path(temp))
    print(f"2 VMs in parallel: {two.wall:.1f} s; against 1 VM: ratio {two.wall / one.wall:.2f} (ideal 1.00)")
    return 0


def report_one(run: Run) -> None:
    phases, guest = run.phases[0], run.guest_boot[0]
    to_ssh = run.wall - phases["first_boot"]
    waits = phases["address"] + phases["ssh"] + phases["first_boot"]
    print(f"1 VM: labctl up {run.wall:.1f} s, guest boot (systemd-analyze) {guest:.1f} s")
    print(f"  phases: {', '.join(f'{k} {v:.1f} s' for k, v in phases.items())}")
    for label, seconds in (
        ("up to SSH, beyond the guest's boot", to_ssh - guest),
        ("up to ready (cloud-init done), beyond the guest's boot", run.wall - guest),
        ("labctl's own work (all but the waits for the guest)", run.wall - waits),
    ):
        print(
            f"  {label}: {seconds:.2f} s (target {TARGET_S:.1f} s, ratio {seconds / TARGET_S:.2f})",
            flush=True,
        )


if __name__ == "__main__":
    raise SystemExit(main())
