"""Helpers shared by test modules: the CLI run in a subprocess and its result."""

from __future__ import annotations

import os
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


def free_subnet(prefix: int = 24) -> str:
    """A subnet in 10.100.0.0/14 that no address or route of this host overlaps (tests share the host)."""
    from labctl import addressing, host

    return addressing.free_subnet([dst for dst, _ in host.host_routes()], "10.100.0.0/14", prefix)
