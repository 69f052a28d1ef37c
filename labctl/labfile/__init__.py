"""The labfile: load, validate and return a frozen Lab (see models.py)."""

from __future__ import annotations

import os
from pathlib import Path

from labctl.labfile.models import Lab

DEFAULT_NAME = "labfile.yml"


def find(path: str | None) -> Path:
    """The labfile the user means: -f PATH, else ./labfile.yml."""
    return Path(path if path else DEFAULT_NAME).absolute()


def load_lab(path: str | None) -> Lab:
    """Load and validate; raises LabfileError with every problem (exit 2)."""
    from labctl.labfile import loader, schema

    labfile = find(path)
    display = os.path.relpath(labfile) if not path or not Path(path).is_absolute() else path
    document = loader.load(labfile, display)
    return schema.build_lab(document, Path(os.path.normpath(labfile)))
