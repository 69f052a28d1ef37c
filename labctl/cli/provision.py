"""labctl provision [NAME...]: run the machines' provisioning steps again, in the order written."""

from __future__ import annotations

import argparse

from labctl.cli.common import add_machine_names, open_lab, report


def configure(parser: argparse.ArgumentParser) -> None:
    add_machine_names(parser, "provision")


def run(args: argparse.Namespace) -> int:
    from labctl.drivers import MachineState
    from labctl.errors import UsageError

    runner = open_lab(args)
    machines = runner.select(args.names)
    stopped = [m.name for m in machines if runner.state_of(m) is not MachineState.RUNNING]
    if stopped:
        names = " ".join(stopped)
        raise UsageError(f"not running: {names}", f"start them first: labctl up {names}")
    with runner.context.state.lock():
        outcomes = runner.provision(machines)
    return report(outcomes, "provision")
