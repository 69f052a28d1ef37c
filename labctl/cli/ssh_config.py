"""labctl ssh-config: an OpenSSH config for the lab, for `ssh -F FILE web` and `scp -F FILE`."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-o", "--output", metavar="FILE", help="write the config to FILE (0600) instead of stdout"
    )


def run(args: argparse.Namespace) -> int:
    from labctl.cli.common import open_lab
    from labctl.provision import sshconfig

    runner = open_lab(args)
    text = sshconfig.render(runner.context, runner.driver)
    emit(text, args.output)
    return 0


def emit(text: str, output: str | None) -> None:
    if output is None:
        print(text, end="")
        return
    import os
    from pathlib import Path

    path = Path(output)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
