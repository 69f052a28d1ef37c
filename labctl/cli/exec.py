"""labctl exec NAME -- CMD...: run a command in a machine; its exit code becomes ours."""

from __future__ import annotations

import argparse

from labctl.errors import UsageError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-t", "--tty", action="store_true", help="allocate a terminal")
    parser.add_argument("name", metavar="NAME")
    parser.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD...")


def run(args: argparse.Namespace) -> int:
    from labctl.cli.common import open_lab
    from labctl.drivers import MachineState

    argv = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not argv:
        raise UsageError("no command given", "labctl exec NAME -- CMD ARGS...")
    runner = open_lab(args)
    machine = runner.machine(args.name)
    if runner.state_of(machine) is not MachineState.RUNNING:
        raise UsageError(f"{machine.name} is not running", f"start it with: labctl up {machine.name}")
    return runner.driver(machine.kind).exec(machine, argv, tty=args.tty)
