"""labctl labs: the course labs shipped with labctl (`labctl init --lab NAME` copies one)."""

from __future__ import annotations

import argparse
import json


def configure(parser: argparse.ArgumentParser) -> None:
    del parser  # no arguments of its own; --json is global


def run(args: argparse.Namespace) -> int:
    from labctl import catalogue, console

    labs = catalogue.load_all()
    if args.json:
        print(json.dumps({"labs": [lab.as_json() for lab in labs]}, indent=2))
        return 0
    rows = [[lab.name, ",".join(lab.kinds), _seconds(lab.up_seconds), lab.summary] for lab in labs]
    print(console.table(["name", "kinds", "~up", "summary"], rows))
    print("\ncopy one to work in: labctl init --lab NAME [DIR]")
    return 0


def _seconds(seconds: float) -> str:
    return f"{seconds:.1f}s" if seconds < 10 else f"{seconds:.0f}s"
