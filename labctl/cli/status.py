"""labctl status: the lab's machines and their live state."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from labctl import console
from labctl.cli.common import add_machine_names, open_lab

if TYPE_CHECKING:
    from labctl.lab import LabRunner
    from labctl.labfile.models import Machine


UNFINISHED = " (unfinished)"


def configure(parser: argparse.ArgumentParser) -> None:
    add_machine_names(parser, "show")


def run(args: argparse.Namespace) -> int:
    runner = open_lab(args)
    rows = machine_rows(runner, runner.select(args.names))
    if args.json:
        print(json.dumps({"lab": runner.lab.name, "id": runner.lab.id, "machines": rows}, indent=2))
        return 0
    print(f"lab {runner.lab.name} ({runner.lab.file})")
    print(table(rows))
    unfinished = [r["name"] for r in rows if r["state"].endswith(UNFINISHED)]
    if unfinished:
        console.warn(
            f"{', '.join(unfinished)}: an earlier up stopped before they were ready; "
            "labctl up finishes them, labctl destroy removes them"
        )
    return 0


def machine_rows(runner: LabRunner, machines: Sequence[Machine]) -> list[dict[str, Any]]:
    """One row per machine: live state from its driver, the rest from the lab's records."""
    records = runner.context.state.machines()
    rows = []
    for machine in machines:
        state = runner.state_of(machine)
        record = records.get(machine.name, {})
        address = record.get("address") or ""
        if state.value == "running" and not address:
            address = runner.driver(machine.kind).address(machine) or ""
        # A machine an interrupted `up` never saw ready: say so, whatever the driver reports.
        unfinished = record.get("status") in ("creating", "starting") and state.value != "not created"
        rows.append(
            {
                "name": machine.name,
                "kind": machine.kind.value,
                "state": state.value + UNFINISHED if unfinished else state.value,
                "ready": state.value == "running" and not unfinished,
                "progress": record.get("progress") if unfinished else None,
                "address": address,
                "box": machine.box or "",
                "host": _host(runner, machine),
                "accel": record.get("accel", ""),
                "phases": record.get("phases", {}),
            }
        )
    return rows


def _host(runner: LabRunner, machine: Machine) -> str:
    """Where the machine runs: "" for this host, else the libvirt host's name."""
    import urllib.parse

    from labctl import placement

    uri = placement.machine_uri(runner.lab, machine)
    return (urllib.parse.urlsplit(uri).hostname or "") if placement.is_remote(uri) else ""


def table(rows: list[dict[str, Any]]) -> str:
    headers = ["name", "kind", "state", "address", "box"]
    if any(r["host"] for r in rows):  # a column only for labs that run somewhere else too
        headers.append("host")
    cells = [[str(r[h]) for h in headers] for r in rows]
    if "host" in headers:
        for row in cells:
            row[-1] = row[-1] or "local"
    return console.table(headers, cells)
