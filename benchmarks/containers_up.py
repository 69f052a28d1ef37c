"""How much labctl adds on top of the raw container tools, and how ns labs scale.

    .venv/bin/python benchmarks/containers_up.py

1. `labctl up` of one ns container against `runc run -d` of the same bundle (target <= 1.5x)
2. `labctl up` of one LXC container against `lxc-start` of the same config until its address
   shows in lxc-info (target <= 1.2x; labctl also waits for sshd)
3. `labctl up` of 1, 10 and 50 ns containers in one lab (target: 50 in <= 5 s)

Prints times and ratios; asserts nothing. Every lab is destroyed afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from labctl import addressing, host
from labctl.drivers import LabContext
from labctl.drivers.lxc import LxcDriver
from labctl.drivers.ns import NsDriver
from labctl.labfile import load_lab


def subnet() -> str:
    return addressing.free_subnet([dst for dst, _ in host.host_routes()], "10.100.0.0/14", prefix=23)


def labctl(labdir: Path, *args: str, check: bool = True) -> float:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "labctl", *args],
        cwd=labdir,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
        check=False,
    )
    if check and result.returncode != 0:
        raise SystemExit(f"labctl {' '.join(args)} failed:\n{result.stderr}")
    return time.monotonic() - started


def write_lab(labdir: Path, machines: str) -> None:
    (labdir / "labfile.yml").write_text(
        f"name: bench\nnetworks: {{lan: {{cidr: {subnet()}, mode: isolated}}}}\nmachines:\n{machines}"
    )


def ns_against_runc(labdir: Path) -> None:
    write_lab(labdir, "  n0: {kind: ns, memory: 32M, networks: [lan]}\n")
    labctl(labdir, "up")  # networks first, so both sides start from the same point
    labctl(labdir, "destroy", "n0")
    ours = labctl(labdir, "up")
    lab = load_lab(str(labdir / "labfile.yml"))
    bundle = NsDriver(LabContext(lab)).bundle(lab.machine("n0"))
    labctl(labdir, "halt")  # bundle and rootfs mount stay
    root = Path(tempfile.mkdtemp(prefix="runc-bench-"))
    started = time.monotonic()
    subprocess.run(
        ["runc", "--root", str(root), "run", "-d", "--bundle", str(bundle), "raw"],
        check=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    raw = time.monotonic() - started
    subprocess.run(["runc", "--root", str(root), "delete", "--force", "raw"], check=False)
    print(
        f"ns  1 container: labctl up {ours:.2f} s, runc run {raw:.2f} s, ratio {ours / raw:.1f}x (target <= 1.5x)"
    )
    labctl(labdir, "destroy", check=False)


def lxc_against_lxc_start(labdir: Path) -> None:
    write_lab(labdir, "  c0: {kind: lxc, box: debian-12, memory: 256M, networks: [lan]}\n")
    labctl(labdir, "up")
    labctl(labdir, "destroy", "c0")
    ours = labctl(labdir, "up")
    lab = load_lab(str(labdir / "labfile.yml"))
    driver = LxcDriver(LabContext(lab))
    base = ["-P", str(driver.lxcpath), "-n", driver.name(lab.machine("c0"))]
    labctl(labdir, "halt")
    started = time.monotonic()
    subprocess.run(["lxc-start", *base, "--daemon"], check=True)
    while not subprocess.run(["lxc-info", *base, "-iH"], capture_output=True, text=True).stdout.strip():
        time.sleep(0.02)
    raw = time.monotonic() - started
    print(
        f"lxc 1 container: labctl up {ours:.2f} s, lxc-start until address {raw:.2f} s, ratio {ours / raw:.1f}x (target <= 1.2x)"
    )
    labctl(labdir, "destroy", check=False)


def ns_scaling(labdir: Path) -> None:
    for count in (1, 10, 50):
        write_lab(
            labdir, "".join(f"  n{i}: {{kind: ns, memory: 16M, networks: [lan]}}\n" for i in range(count))
        )
        took = labctl(labdir, "up")
        print(
            f"ns {count:2d} containers in one lab: labctl up {took:.2f} s"
            + (" (target <= 5 s)" if count == 50 else "")
        )
        labctl(labdir, "destroy", check=False)


def main() -> None:
    for bench in (ns_against_runc, lxc_against_lxc_start, ns_scaling):
        with tempfile.TemporaryDirectory(prefix="labctl-bench-") as tmp:
            try:
                bench(Path(tmp))
            finally:
                subprocess.run(
                    [sys.executable, "-m", "labctl", "destroy"], cwd=tmp, capture_output=True, check=False
                )


if __name__ == "__main__":
    main()
