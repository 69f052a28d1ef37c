"""labctl destroy: remove machines and, when all go, every trace of the lab."""

from __future__ import annotations

import argparse

from labctl.cli.common import add_machine_names, open_lab, report


def configure(parser: argparse.ArgumentParser) -> None:
    add_machine_names(parser, "destroy")


def run(args: argparse.Namespace) -> int:
    runner = open_lab(args)
    machines = runner.select(args.names)
    with runner.context.state.lock():
        outcomes = runner.destroy(machines)
    return report(outcomes, "destroy")
