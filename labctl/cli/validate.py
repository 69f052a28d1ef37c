"""labctl validate: check the labfile and report every problem in it at once."""

from __future__ import annotations

import argparse
import json
from collections import Counter

from labctl.errors import LabfileError
from labctl.labfile.models import Kind, Lab


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = "Exit code 0 when the labfile is valid, 2 when it has problems (all listed)."


def run(args: argparse.Namespace) -> int:
    from labctl.labfile import load_lab
    from labctl.state import bound_if_possible

    try:
        lab = bound_if_possible(load_lab(args.file))  # the id a lab made with a short one keeps
    except LabfileError as exc:
        if not args.json:
            raise
        problems = [p.__dict__ for p in exc.problems]
        print(json.dumps({"valid": False, "problems": problems}, indent=2))
        return exc.exit_code
    counts = Counter(m.kind.value for m in lab.machines)
    if args.json:
        print(
            json.dumps(
                {
                    "valid": True,
                    "lab": lab.name,
                    "id": lab.id,
                    "machines": dict(counts),
                    "networks": [n.name for n in lab.networks],
                    "privileged": _privileged(lab),
                },
                indent=2,
            )
        )
        return 0
    kinds = ", ".join(f"{counts[kind]} {kind}" for kind in Kind if counts[kind])
    nets = len(lab.networks)
    checks = f"; {len(lab.checks)} check{'s' if len(lab.checks) != 1 else ''}" if lab.checks else ""
    print(f"ok: lab {lab.name}: {kinds}; {nets} network{'s' if nets != 1 else ''}{checks}")
    _warn_privileged(lab)
    _warn_public_subnets(lab)
    _warn_missing_boxes(lab)
    return 0


def _privileged(lab: Lab) -> list[str]:
    return [m.name for m in lab.machines if m.privileged]


def _warn_privileged(lab: Lab) -> None:
    """Valid, but worth a line: in these machines container root is the host's root."""
    from labctl import console

    names = _privileged(lab)
    if names:
        console.warn(
            f"privileged: {', '.join(names)} (privileged: true): their root is the host's root, "
            "not an id-mapped user; drop the key unless a machine needs it"
        )


def _warn_public_subnets(lab: Lab) -> None:
    from labctl import console
    from labctl.network import public_subnet_warning

    for network in lab.networks:
        if (message := public_subnet_warning(network)) is not None:
            console.warn(message)


def _warn_missing_boxes(lab: object) -> None:
    """A valid labfile may still name boxes this host has not built yet: say how to get them."""
    from labctl import console
    from labctl.boxes_needed import missing_boxes

    for name, machines in missing_boxes(lab).items():
        console.warn(
            f"box {name} (used by {', '.join(machines)}) is not in the store; build it with: labctl box build {name}"
        )
