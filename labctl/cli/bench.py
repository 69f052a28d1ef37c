"""labctl bench: run the workloads on the host and on lab machines; write raw results as JSON."""

from __future__ import annotations

import argparse
import contextlib
import datetime
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from labctl import console
from labctl.errors import EXIT_OK, UsageError

if TYPE_CHECKING:
    from labctl.bench.results import ResultsFile
    from labctl.bench.targets import Target
    from labctl.lab import LabRunner

RESULTS_DIR = "bench-results"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "names", nargs="*", metavar="MACHINE", help="lab machines to measure (default: all running)"
    )
    parser.add_argument(
        "--suite", choices=("quick", "standard"), default="quick", help="workload sizes (default: quick)"
    )
    parser.add_argument(
        "--repeat", type=int, metavar="N", help="measured rounds (default: 3 quick, 10 standard)"
    )
    parser.add_argument(
        "--out", metavar="DIR", help=f"where results.json goes (default: ./{RESULTS_DIR}/<time>)"
    )
    parser.add_argument(
        "--compare",
        metavar="BOX",
        help="create a throw-away lab with one machine per kind from BOX, measure it, destroy it",
    )
    parser.add_argument(
        "--kinds",
        metavar="LIST",
        help="with --compare: which machines, comma-separated from ns,lxc,vm-paravirtual,vm-emulated,vm-tcg "
        "(default: all but vm-tcg; vm-tcg too when KVM works)",
    )
    parser.add_argument("--cpus", type=int, default=1, help="with --compare: CPUs per machine (default 1)")
    parser.add_argument("--memory", default="768M", help="with --compare: memory per machine (default 768M)")


def run(args: argparse.Namespace) -> int:
    from labctl.bench.fingerprint import host_fingerprint
    from labctl.bench.results import NAME, ResultsFile
    from labctl.bench.workloads import SUITES

    suite = SUITES[args.suite]
    repeats = args.repeat if args.repeat is not None else suite.repeats
    if repeats < 1:
        raise UsageError("--repeat must be at least 1")
    if args.names and args.compare:
        raise UsageError("name machines or use --compare, not both")
    out = (
        Path(args.out) if args.out else Path(RESULTS_DIR) / datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    )
    with console.step("fingerprinting the host"):
        results = ResultsFile(out / NAME, suite, repeats, host_fingerprint())
    status = "failed"
    try:
        with _sigterm_as_interrupt():
            _bench(args, results)
        status = "complete"
    except KeyboardInterrupt:
        status = "interrupted"
        console.warn(f"interrupted; finished samples are in {results.path}")
        raise
    finally:
        results.finish(status)
    console.info(f"results: {results.path}")
    print(f"next: labctl report {out}")
    return EXIT_OK


def _bench(args: argparse.Namespace, results: ResultsFile) -> None:
    from labctl.bench import compare
    from labctl.bench.fingerprint import box_fingerprint
    from labctl.bench.runner import Bench
    from labctl.bench.workloads import SUITES

    suite, repeats = SUITES[results.data["suite"]], results.data["repeats"]
    if args.compare:
        kinds = compare.parse_kinds(args.kinds) if args.kinds else compare.default_kinds()
        results.data["fingerprint"]["boxes"] = [box_fingerprint(args.compare)]
        with compare.comparison_lab(args.compare, kinds, args.cpus, args.memory) as runner:
            Bench(_targets(runner, []), suite, repeats, results).run()
        return
    lab = _lab_or_none(args)
    if lab is not None:
        boxes = sorted({m.box for m in lab.lab.machines if m.box})
        results.data["fingerprint"]["boxes"] = [box_fingerprint(b) for b in boxes]
    Bench(_targets(lab, args.names), suite, repeats, results).run()


def _lab_or_none(args: argparse.Namespace) -> LabRunner | None:
    """The lab of -f/./labfile.yml; None (host only) when there is none and no machine is named."""
    from labctl.cli.common import open_lab
    from labctl.labfile import find

    if args.file is None and not args.names and not find(None).exists():
        console.notice("no labfile here: measuring the host only (use --compare BOX for a comparison lab)")
        return None
    return open_lab(args)


def _targets(runner: LabRunner | None, names: list[str]) -> list[Target]:
    from labctl import placement
    from labctl.bench.targets import HostTarget, MachineTarget
    from labctl.drivers import MachineState

    targets: list[Target] = [HostTarget()]
    if runner is None:
        return targets
    for machine in runner.select(names):
        if placement.is_remote(placement.machine_uri(runner.lab, machine)):
            # Its baseline would be another host's, and its network peer (the lab gateway) is there.
            console.warn(
                f"{machine.name} runs on a remote libvirt host; left out (bench compares with this host)"
            )
            continue
        if runner.state_of(machine) is not MachineState.RUNNING:
            console.warn(f"{machine.name} is not running; left out (start it with labctl up)")
            continue
        targets.append(MachineTarget(runner, machine))
    return targets


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """`kill` (SIGTERM) cleans up like Ctrl-C: the comparison lab is destroyed, results kept."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
