"""labctl killed with SIGKILL in the middle of `up`: the next `up` completes, `destroy` cleans all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_containers import host_traces, labctl
from tests_support import free_subnet

from labctl.drivers import LabContext
from labctl.drivers.lxc import LxcDriver
from labctl.drivers.ns import NsDriver
from labctl.labfile import load_lab

pytestmark = pytest.mark.integration


def start_up(labdir: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "labctl", "up"],
        cwd=labdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "NO_COLOR": "1"},
    )


@pytest.mark.parametrize("delay", [0.4, 0.9])
def test_up_killed_midway_is_completed_then_destroyed_cleanly(tmp_path: Path, delay: float) -> None:
    (tmp_path / "labfile.yml").write_text(
        f"name: crash\n"
        f"networks: {{lan: {{cidr: {free_subnet()}, mode: isolated}}}}\n"
        "machines:\n"
        "  sys: {kind: lxc, box: debian-12, memory: 256M, networks: [lan]}\n"
        "  one: {kind: ns, box: debian-12, memory: 32M, networks: [lan]}\n"
        "  two: {kind: ns, memory: 32M, namespaces: [pid, net, uts, ipc, mnt, user], networks: [lan]}\n"
    )
    lab = load_lab(str(tmp_path / "labfile.yml"))
    context = LabContext(lab)
    try:
        proc = start_up(tmp_path)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        result = labctl(tmp_path, "up")
        assert result.returncode == 0, result.stdout + result.stderr
        for name in ("sys", "one", "two"):
            assert labctl(tmp_path, "exec", name, "--", "true").returncode == 0
        assert labctl(tmp_path, "destroy").returncode == 0
        traces = host_traces(lab)
        assert traces == {key: set() for key in traces}
    finally:
        labctl(tmp_path, "destroy")
        for machine in lab.machines:
            (LxcDriver if machine.kind == "lxc" else NsDriver)(context).destroy(machine)
