"""labctl console NAME: attach to a machine's console (VM serial console, LXC console)."""

from __future__ import annotations

import argparse

from labctl.errors import UsageError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME")


def run(args: argparse.Namespace) -> int:
    from labctl.cli.common import open_lab
    from labctl.run import stream

    runner = open_lab(args)
    machine = runner.machine(args.name)
    driver = runner.driver(machine.kind)
    console_argv = getattr(driver, "console_argv", None)
    if console_argv is None:
        raise UsageError(f"{machine.kind.value} machines have no console", f"use: labctl ssh {machine.name}")
    argv: list[str] = console_argv(machine)
    return stream(argv)
