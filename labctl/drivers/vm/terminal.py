"""The local terminal in raw mode while an interactive command runs in a VM (`labctl ssh`-like exec)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def raw_terminal() -> Iterator[None]:
    """Raw mode on stdin when it is a terminal (keys go to the guest's pty as typed); restored after."""
    if not sys.stdin.isatty():
        yield
        return
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
