"""labctl status: the lab's machines and their live state."""

from __future__ import annotations

import argparse
import json

from labctl import console
from labctl.cli.common import add_machine_names, open_lab


def configure(parser: argparse.ArgumentParser) -> None:
    add_machine_names(parser, "show")


def run(args: argparse.Namespace) -> int:
    runner = open_lab(args)
    records = runner.context.state.machines()
    rows = []
    for machine in runner.select(args.names):
        state = runner.state_of(machine)
        record = records.get(machine.name, {})
        address = record.get("address") or ""
        if state.value == "running" and not address:
            address = runner.driver(machine.kind).address(machine) or ""
        rows.append(
            {
                "name": machine.name,
                "kind": machine.kind.value,
                "state": state.value,
                "address": address,
                "box": machine.box or "",
                "accel": record.get("accel", ""),
                "phases": record.get("phases", {}),
            }
        )
    if args.json:
        print(json.dumps({"lab": runner.lab.name, "id": runner.lab.id, "machines": rows}, indent=2))
        return 0
    headers = ["name", "kind", "state", "address", "box"]
    print(f"lab {runner.lab.name} ({runner.lab.file})")
    print(console.table(headers, [[str(r[h]) for h in headers] for r in rows]))
    return 0
