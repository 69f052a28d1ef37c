"""One test hook, so the crash tests can stop labctl at an exact point instead of a guessed sleep."""

from __future__ import annotations

import os
import signal

FAILPOINT = "LABCTL_FAILPOINT"


def failpoint(name: str, point: str) -> None:
    """With LABCTL_FAILPOINT=NAME:POINT[:SIGNAL] labctl sends itself SIGNAL (KILL unless named,
    e.g. INT for a Ctrl-C) the moment NAME reaches POINT: a machine entering a phase of its
    create or start, or `provisioned-N` after its step N; `network-NAME` at `defined` (defined,
    not started yet). It does nothing unless the variable is set."""
    wanted = os.environ.get(FAILPOINT)
    if not wanted:
        return
    wanted_name, _, rest = wanted.partition(":")
    where, _, signame = rest.partition(":")
    if (wanted_name, where) == (name, point):
        os.kill(os.getpid(), getattr(signal, f"SIG{signame or 'KILL'}"))
