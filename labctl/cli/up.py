"""labctl up: create, start and provision the lab's machines (all, or those named)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING

from labctl.cli.common import add_machine_names, open_lab, report

if TYPE_CHECKING:
    from labctl.lab import LabRunner
    from labctl.labfile.models import Machine


def configure(parser: argparse.ArgumentParser) -> None:
    add_machine_names(parser, "bring up")
    parser.add_argument(
        "--provision",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="provision every machine named (--provision) or none (--no-provision); "
        "default: only the machines this run creates",
    )


def run(args: argparse.Namespace) -> int:
    runner = open_lab(args)
    machines = runner.select(args.names)
    with runner.context.state.lock():
        outcomes = runner.up(machines, provision=args.provision)
    _print_summary(runner, machines)
    return report(outcomes, "up")


def _print_summary(runner: LabRunner, machines: Sequence[Machine]) -> None:
    """Where each machine is now, on stdout after the progress lines on stderr. Only a view:
    if it cannot be read, the outcome of `up` stands and the user is told how to look."""
    from labctl import console
    from labctl.cli.status import machine_rows, table
    from labctl.errors import LabctlError

    try:
        print(table(machine_rows(runner, machines)))
    except LabctlError as exc:
        console.warn(f"cannot show the lab's status: {exc.message}; run labctl status")
