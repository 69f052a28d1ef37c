"""labctl snapshot save|restore|list|delete NAME [TAG]."""

from __future__ import annotations

import argparse

from labctl.errors import UsageError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["save", "restore", "list", "delete"])
    parser.add_argument("name", metavar="NAME")
    parser.add_argument("tag", nargs="?", metavar="TAG")


def run(args: argparse.Namespace) -> int:
    from labctl.cli.common import open_lab
    from labctl.labfile.values import name as valid_name

    runner = open_lab(args)
    machine = runner.machine(args.name)
    driver = runner.driver(machine.kind)
    if args.action == "list":
        for tag in driver.snapshot_list(machine):
            print(tag)
        return 0
    if not args.tag:
        raise UsageError(
            f"snapshot {args.action} needs a TAG", f"labctl snapshot {args.action} {machine.name} TAG"
        )
    try:
        tag = valid_name(args.tag, "snapshot tag")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    action = {
        "save": driver.snapshot_save,
        "restore": driver.snapshot_restore,
        "delete": driver.snapshot_delete,
    }
    with runner.context.state.lock():
        action[args.action](machine, tag)
    print(f"{machine.name}: snapshot {tag} {args.action.rstrip('e')}ed")
    return 0
