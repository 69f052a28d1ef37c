"""labctl check: run the lab's progress checks and say which pass (exit 0 only if all do)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

from labctl import console
from labctl.errors import EXIT_FAILURE, EXIT_OK, UsageError, printable

if TYPE_CHECKING:
    from labctl.checks import Outcome
    from labctl.labfile.models import Check, Lab


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--step",
        action="append",
        default=[],
        metavar="S",
        help="the checks of step S (repeatable; with NAMEs, those too)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="also show each check's description")
    parser.add_argument("names", nargs="*", metavar="NAME", help="checks to run (default: all)")


def run(args: argparse.Namespace) -> int:
    from labctl.checks import run_checks
    from labctl.cli.common import open_lab

    runner = open_lab(args)
    checks = select(runner.lab, args.names, args.step)
    outcomes = run_checks(runner, checks)
    failed = sum(1 for o in outcomes if not o.passed)
    if args.json:
        document = {
            "lab": runner.lab.name,
            "passed": len(outcomes) - failed,
            "failed": failed,
            "checks": [o.as_json() for o in outcomes],
        }
        print(json.dumps(document, indent=2))
    else:
        print(table(outcomes, verbose=args.verbose))
        summary = f"{len(outcomes) - failed} of {len(outcomes)} checks passed"
        if failed:
            console.info(f"{summary}; {failed} failed")
        else:
            console.info(summary)
    return EXIT_FAILURE if failed else EXIT_OK


def select(lab: Lab, names: Sequence[str], steps: Sequence[str]) -> list[Check]:
    """The checks named or in one of the steps given (all without either), in labfile order;
    an unknown name or step is refused."""
    if not lab.checks:
        raise UsageError(
            f"lab {lab.name} has no checks",
            "add a checks: section to the labfile (see the README, section Checks)",
        )
    known_names = [c.name for c in lab.checks]
    known_steps = sorted({c.step for c in lab.checks if c.step})
    unknown = [n for n in names if n not in known_names]
    if unknown:
        raise UsageError(f"no check named {', '.join(unknown)}", f"checks: {', '.join(known_names)}")
    bad_steps = [s for s in steps if s not in known_steps]
    if bad_steps:
        listed = ", ".join(known_steps) if known_steps else "none (no check has a step)"
        raise UsageError(f"no step {', '.join(bad_steps)} in lab {lab.name}", f"steps: {listed}")
    if not names and not steps:
        return list(lab.checks)
    return [c for c in lab.checks if c.name in names or c.step in steps]


def table(outcomes: Sequence[Outcome], *, verbose: bool = False) -> str:
    headers = ["step", "check", "machine", "result", "seconds", "detail"]
    if verbose:
        headers.insert(2, "description")
    rows = []
    for outcome in outcomes:
        check = outcome.check
        row = [check.step or "-", check.name, check.on]
        if verbose:
            row.insert(2, check.description or "")
        result = "PASS" if outcome.passed else "FAIL"
        row += [result, f"{outcome.seconds:.2f}", printable(outcome.detail)]
        rows.append(row)
    return console.table(headers, rows)
