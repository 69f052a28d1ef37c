"""Types shared by test modules (conftest fixtures return these)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str
