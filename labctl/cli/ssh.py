"""labctl ssh NAME: an interactive shell (OpenSSH for VMs and LXC, the runtime for ns)."""

from __future__ import annotations

import argparse

from labctl.errors import UsageError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME")
    parser.add_argument(
        "command", nargs=argparse.REMAINDER, metavar="-- CMD...", help="run this instead of a login shell"
    )


def run(args: argparse.Namespace) -> int:
    from labctl.cli.common import open_lab
    from labctl.drivers import MachineState
    from labctl.run import stream

    runner = open_lab(args)
    machine = runner.machine(args.name)
    if runner.state_of(machine) is not MachineState.RUNNING:
        raise UsageError(f"{machine.name} is not running", f"start it with: labctl up {machine.name}")
    driver = runner.driver(machine.kind)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    target = driver.ssh_target(machine)
    if target is None:
        return driver.exec(machine, command or ["/bin/sh", "-l"], tty=not command)
    argv = [
        "ssh",
        "-i",
        str(target.key),
        "-p",
        str(target.port),
        "-o",
        f"UserKnownHostsFile={runner.context.known_hosts}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        f"HostKeyAlias={target.host}",
        *target.proxy_options(),
        f"{target.user}@{target.host}",
    ]
    return stream([*argv, "--", *command] if command else argv)
