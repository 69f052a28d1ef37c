"""labctl halt: shut machines down cleanly, forcing them off after a timeout."""

from __future__ import annotations

import argparse

from labctl.cli.common import add_machine_names, open_lab, report


def configure(parser: argparse.ArgumentParser) -> None:
    add_machine_names(parser, "halt")
    parser.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="wait this long for a clean shutdown before forcing it (default 60)",
    )


def run(args: argparse.Namespace) -> int:
    runner = open_lab(args)
    machines = runner.select(args.names)
    with runner.context.state.lock():
        return report(runner.halt(machines, args.timeout), "halt")
