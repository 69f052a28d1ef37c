"""labctl's overhead when it brings up VMs, beyond the guest's own boot.

For one VM: the wall time of VmDriver.create (define, QEMU start, address, SSH, first boot) minus
the guest's boot time as `systemd-analyze` measures it inside the guest. Target: at most 1 s per VM.
Then 2 VMs created in parallel against 1 (ideal ratio 1.0; on 2 shared cores and TCG expect more).
Prints numbers and ratios, asserts nothing. Needs root, libvirtd and the debian-12 box.

    .venv/bin/python benchmarks/vm_up.py [--box debian-12] [--devices paravirtual]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import ipaddress
import json
import random
import re
import shutil
import subprocess
import tempfile
import textwrap
import time
from pathlib import Path

from labctl import keys, network
from labctl.drivers import Driver, LabContext, driver_for
from labctl.labfile import load_lab
from labctl.labfile.models import Lab, Machine

TARGET_S = 1.0


def free_subnet() -> str:
    """A /24 that no host address or route touches."""
    addrs = json.loads(subprocess.run(["ip", "-j", "-4", "addr"], capture_output=True, text=True).stdout)
    routes = json.loads(subprocess.run(["ip", "-j", "-4", "route"], capture_output=True, text=True).stdout)
    taken = [
        ipaddress.ip_network(f"{a['local']}/{a['prefixlen']}", strict=False)
        for link in addrs
        for a in link.get("addr_info", [])
    ]
    taken += [
        ipaddress.ip_network(r["dst"], strict=False) for r in routes if r.get("dst") not in (None, "default")
    ]
    while True:
        candidate = ipaddress.ip_network(f"10.{random.randint(150, 199)}.{random.randint(0, 255)}.0/24")
        if not any(candidate.overlaps(t) for t in taken):
            return str(candidate)


def write_lab(root: Path, count: int, box: str, devices: str, cidr: str) -> Lab:
    machines = "".join(
        f"  b{i}:\n    kind: vm\n    box: {box}\n    memory: 768M\n    devices: {devices}\n"
        for i in range(count)
    )
    root.mkdir(parents=True)
    text = f"name: vmbench{count}\nnetworks:\n  lan:\n    cidr: {cidr}\nmachines:\n{machines}"
    (root / "labfile.yml").write_text(textwrap.dedent(text))
    return load_lab(str(root / "labfile.yml"))


def guest_boot_seconds(driver: Driver, machine: Machine) -> float:
    """Kernel + initrd + userspace from systemd-analyze (retried while boot is still finishing)."""
    for _ in range(30):
        out = driver.run(machine, ["systemd-analyze", "time"]).stdout
        found = re.search(r"=\s*(?:(\d+)min\s*)?([\d.]+)s", out)
        if found:
            return int(found.group(1) or 0) * 60 + float(found.group(2))
        time.sleep(2)
    raise SystemExit(f"systemd-analyze never reported a finished boot: {out!r}")


def bring_up(lab: Lab, context: LabContext, driver: Driver) -> float:
    driver.check_host(lab.machines)
    context.state.ensure_dir()
    keys.ensure_keypair(context.key_path, f"labctl-{lab.id}")
    network.check_collisions(lab)
    network.ensure_networks(lab)
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(lab.machines)) as pool:
        for future in [pool.submit(driver.create, m) for m in lab.machines]:
            future.result()
    return time.monotonic() - started


def tear_down(lab: Lab, driver: Driver) -> None:
    for machine in lab.machines:
        driver.destroy(machine)
    network.remove_networks(lab)
    shutil.rmtree(driver.context.data_dir, ignore_errors=True)


def measure(
    count: int, args: argparse.Namespace, work: Path
) -> tuple[float, list[float], list[dict[str, float]]]:
    lab = write_lab(work / f"lab{count}", count, args.box, args.devices, free_subnet())
    context = LabContext(lab)
    driver = driver_for(lab.machines[0].kind, context)
    try:
        wall = bring_up(lab, context, driver)
        guest = [guest_boot_seconds(driver, m) for m in lab.machines]
        phases = [context.state.machines()[m.name]["phases"] for m in lab.machines]
        return wall, guest, phases
    finally:
        # Also after a failed create: a benchmark must not leave VMs or networks behind.
        tear_down(lab, driver)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--box", default="debian-12")
    parser.add_argument("--devices", default="paravirtual", choices=["paravirtual", "emulated"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vm-up-") as temp:
        one_wall, one_guest, one_phases = measure(1, args, Path(temp))
        report_one(one_wall, one_guest[0], one_phases[0])
        two_wall, _two_guest, _ = measure(2, args, Path(temp))
    print(f"2 VMs in parallel: {two_wall:.1f} s; against 1 VM: ratio {two_wall / one_wall:.2f} (ideal 1.00)")
    return 0


def report_one(wall: float, guest: float, phases: dict[str, float]) -> None:
    overhead = wall - guest
    own = phases["define"] + phases["boot"]
    print(f"1 VM: create {wall:.1f} s, guest boot (systemd-analyze) {guest:.1f} s")
    print(f"  phases: {', '.join(f'{k} {v:.1f} s' for k, v in phases.items())}")
    print(
        f"  overhead beyond the guest's boot: {overhead:.2f} s (target {TARGET_S:.1f} s, ratio {overhead / TARGET_S:.2f})"
    )
    print(
        f"  labctl's own work before the guest runs (define + QEMU start): {own:.2f} s (ratio {own / TARGET_S:.2f})",
        flush=True,
    )


if __name__ == "__main__":
    raise SystemExit(main())
