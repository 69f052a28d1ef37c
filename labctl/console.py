"""Terminal output: one-line messages, timed steps, simple tables.

Messages go to stderr so that stdout carries only results (tables, JSON, command output).
Colour is off when NO_COLOR is set or stderr is not a terminal.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterator, Sequence

_lock = threading.Lock()
_quiet = False
_debug = False


def set_quiet(quiet: bool) -> None:
    global _quiet
    _quiet = quiet


def set_debug(debug: bool) -> None:
    global _debug
    _debug = debug


def debug_enabled() -> bool:
    return _debug


def traceback_of(exc: BaseException) -> None:
    """With --debug, the full traceback of an error caught away from the top level."""
    if _debug:
        import traceback

        _emit("".join(traceback.format_exception(exc)).rstrip())


def _colour(code: str, text: str) -> str:
    isatty = getattr(sys.stderr, "isatty", None)
    if os.environ.get("NO_COLOR") or not (isatty and isatty()):
        return text
    return f"\033[{code}m{text}\033[0m"


def _emit(line: str) -> None:
    with _lock:
        print(line, file=sys.stderr, flush=True)


def info(message: str) -> None:
    if not _quiet:
        _emit(message)


def notice(message: str) -> None:
    """Something the user should know but need not act on (e.g. TCG fallback)."""
    _emit(_colour("33", "notice: ") + message)


def warn(message: str) -> None:
    _emit(_colour("33;1", "warning: ") + message)


def error(message: str, hint: str | None = None) -> None:
    _emit(_colour("31;1", "error: ") + message)
    if hint:
        _emit(_colour("36", "hint: ") + hint)


@contextlib.contextmanager
def step(title: str) -> Iterator[None]:
    """Print 'title...' then 'title... 12.4 s' (or 'failed') when the block ends."""
    started = time.monotonic()
    info(f"{title}...")
    try:
        yield
    except BaseException:
        info(f"{title}... " + _colour("31", f"failed after {time.monotonic() - started:.1f} s"))
        raise
    info(f"{title}... " + _colour("32", f"{time.monotonic() - started:.1f} s"))


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain aligned text table (no box drawing, so it pastes into any terminal or issue)."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)
