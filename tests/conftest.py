"""Shared fixtures: a lab directory with a labfile in it, and the CLI run as a user runs it."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests_support import CliResult, run_labctl

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def labdir(tmp_path: Path) -> Iterator[Path]:
    """An empty lab directory, also the current directory for the test."""
    lab = tmp_path / "lab"
    lab.mkdir()
    old = Path.cwd()
    os.chdir(lab)
    try:
        yield lab
    finally:
        os.chdir(old)


@pytest.fixture
def write_labfile(labdir: Path) -> Callable[[str], Path]:
    def write(text: str, name: str = "labfile.yml") -> Path:
        path = labdir / name
        path.write_text(textwrap.dedent(text))
        return path

    return write


@pytest.fixture
def cli() -> Callable[..., CliResult]:
    return run_labctl


# -- boxes (owned by the box store; the fixture lives in tests/box_fixture.py) -----------------
from box_fixture import debian_box  # noqa: E402, F401 - a pytest fixture, used by name
