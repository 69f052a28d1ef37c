"""Helpers shared by test modules: the CLI run in a subprocess and its result."""

from __future__ import annotations

import ipaddress
import json
import os
import random
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

LABCTL = [sys.executable, "-m", "labctl"]


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def run_labctl(
    *args: str, cwd: Path | None = None, timeout: float = 900, env: dict[str, str] | None = None
) -> CliResult:
    """labctl in a subprocess, exactly as a user runs it (no stdin)."""
    full_env = {**os.environ, "NO_COLOR": "1", **(env or {})}
    proc = subprocess.run(
        [*LABCTL, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env=full_env,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def free_subnet() -> str:
    """A /24 in 10.0.0.0/8 that no address or route of this host overlaps (tests share the host)."""
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
        candidate = ipaddress.ip_network(f"10.{random.randint(100, 250)}.{random.randint(0, 255)}.0/24")
        if not any(candidate.overlaps(t) for t in taken):
            return str(candidate)
