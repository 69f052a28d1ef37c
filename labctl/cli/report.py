"""labctl report: turn bench results into report.md and a self-contained report.html."""

from __future__ import annotations

import argparse
from pathlib import Path

from labctl import console
from labctl.errors import EXIT_OK


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "results",
        nargs="?",
        metavar="RESULTS",
        help="a results.json or the directory holding it (default: the newest under ./bench-results)",
    )
    parser.add_argument("--out", metavar="DIR", help="where the reports go (default: beside the results)")


def run(args: argparse.Namespace) -> int:
    from labctl.bench.results import load, locate
    from labctl.cli.bench import RESULTS_DIR
    from labctl.report import write_reports

    path = locate(Path(args.results) if args.results else None, Path(RESULTS_DIR))
    out = Path(args.out) if args.out else path.parent
    written = write_reports(load(path), out)
    for file in written:
        console.info(f"wrote {file}")
    return EXIT_OK
