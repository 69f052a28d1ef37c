"""Helpers shared by the verbs that act on a lab."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING

from labctl import console
from labctl.errors import EXIT_FAILURE, EXIT_OK

if TYPE_CHECKING:
    from labctl.lab import LabRunner, Outcome


def open_lab(args: argparse.Namespace) -> LabRunner:
    from labctl.lab import LabRunner
    from labctl.labfile import load_lab

    return LabRunner(load_lab(args.file))


def add_machine_names(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"machines to {what} (default: all)")


def report(outcomes: Sequence[Outcome], verb: str) -> int:
    """One summary line; exit 1 when any machine failed, naming each."""
    failures = [o for o in outcomes if o.error is not None]
    if not failures:
        return EXIT_OK
    names = ", ".join(o.machine for o in failures)
    console.error(
        f"{verb} failed for {len(failures)} of {len(outcomes)} machines: {names}",
        f"fix the cause above and run labctl {verb} again; finished machines are kept",
    )
    return EXIT_FAILURE
