"""labctl up: create, start and provision the lab's machines (all, or those named)."""

from __future__ import annotations

import argparse

from labctl.cli.common import add_machine_names, open_lab, report


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
    from labctl.cli.status import machine_rows, table

    # The summary goes to stdout, after the progress lines on stderr: where each machine is now.
    print(table(machine_rows(runner, machines)))
    return report(outcomes, "up")
