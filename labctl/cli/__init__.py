"""labctl's command line: one module per verb, imported only when that verb runs.

Each verb module defines `configure(parser)` (arguments only, no heavy imports) and
`run(args) -> int`. The top level turns LabctlError into `error:`/`hint:` lines and an exit
code; a traceback appears only with --debug.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Protocol, cast

from labctl import __version__
from labctl.errors import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, LabctlError

# verb: (module, one-line help). Order is the order of `labctl --help`.
VERBS: dict[str, tuple[str, str]] = {
    "init": ("labctl.cli.init", "write a commented starter labfile, or copy a course lab"),
    "labs": ("labctl.cli.labs", "list the course labs shipped with labctl"),
    "validate": ("labctl.cli.validate", "check the labfile and report every problem in it"),
    "up": ("labctl.cli.up", "create and start the lab's machines"),
    "status": ("labctl.cli.status", "show the lab's machines and their state"),
    "exec": ("labctl.cli.exec", "run a command in a machine"),
    "ssh": ("labctl.cli.ssh", "open a shell in a machine"),
    "console": ("labctl.cli.serial_console", "attach to a machine's console"),
    "provision": ("labctl.cli.provision", "run the machines' provisioning steps again"),
    "ssh-config": ("labctl.cli.ssh_config", "print an OpenSSH config for the lab's machines"),
    "inventory": ("labctl.cli.inventory", "print an Ansible inventory of the lab"),
    "check": ("labctl.cli.check", "run the lab's checks and show which pass"),
    "halt": ("labctl.cli.halt", "shut machines down"),
    "snapshot": ("labctl.cli.snapshot", "save, restore, list and delete machine snapshots"),
    "destroy": ("labctl.cli.destroy", "remove machines and everything the lab created"),
    "bench": ("labctl.cli.bench", "measure the host and lab machines with the same workloads"),
    "report": ("labctl.cli.report", "write report.md and report.html from bench results"),
    "doctor": ("labctl.cli.doctor", "check that this host can run the lab"),
    "box": ("labctl.cli.box", "build, add, list, export and remove boxes"),
}


class VerbModule(Protocol):
    def configure(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse exits 2 on usage errors, which is labctl's code for bad input too.
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="labctl",
        description="Declarative labs of KVM/QEMU VMs, LXC containers and namespace containers.",
    )
    parser.add_argument("--version", action="version", version=f"labctl {__version__}")
    _add_globals(parser, top=True)
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)
    for name, (module_name, help_text) in VERBS.items():
        sub = verbs.add_parser(name, help=help_text, description=help_text)
        _add_globals(sub, top=False)
        _load(module_name).configure(sub)
        sub.set_defaults(_module=module_name)
    return parser


def _add_globals(parser: argparse.ArgumentParser, *, top: bool) -> None:
    # Accepted before or after the verb; SUPPRESS keeps a verb-level default from
    # overwriting a value given before the verb.
    default = None if top else argparse.SUPPRESS
    parser.add_argument(
        "-f", "--file", metavar="PATH", default=default, help="the labfile (default: ./labfile.yml)"
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="show tracebacks and external commands",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="machine-readable output where the verb supports it",
    )


def _load(module_name: str) -> VerbModule:
    return cast(VerbModule, importlib.import_module(module_name))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verb is None:
        parser.print_help()
        return EXIT_USAGE
    if args.debug:
        from labctl import console

        console.set_debug(True)
    try:
        return _load(args._module).run(args)
    except LabctlError as exc:
        if args.debug:
            raise
        from labctl import console

        console.error(exc.message, exc.hint)
        return exc.exit_code
    except BrokenPipeError:
        # `labctl box list | head`: the reader left; that is not an error of ours.
        _silence_stdout()
        return EXIT_OK
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        from labctl import console

        console.error(f"internal error: {type(exc).__name__}: {exc}", "run again with --debug and report it")
        return EXIT_FAILURE


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail again."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
