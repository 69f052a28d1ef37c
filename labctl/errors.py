"""Every error labctl raises on purpose, in one tree.

    LabctlError(message, hint)          anything labctl can explain to a user
    ├── UsageError                      bad command line (exit 2)
    ├── LabfileError                    the labfile is wrong; carries every Problem (exit 2)
    ├── StateError                      .labctl/ is unreadable, locked or from a newer labctl
    ├── HostError                       the host lacks something a lab needs (KVM, libvirtd, lxc...)
    ├── BoxError                        a box is missing, corrupt or fails its checksum
    ├── DriverError                     creating or driving a machine failed
    │   └── TimeoutError_               a machine did not reach a phase in time
    ├── ProvisionError                  a provisioning step failed
    └── CommandError                    an external command failed (argv, exit code, output)

Foreign errors (libvirtError, SSHException, OSError from a tool) are turned into one of these
where they enter labctl, so the top level only ever catches LabctlError.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


class LabctlError(Exception):
    """An error with a message for the user and, when we know one, what to do next."""

    exit_code = EXIT_FAILURE

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(LabctlError):
    exit_code = EXIT_USAGE


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a labfile, located as precisely as the YAML allows."""

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        # The path holds the labfile's own keys: a key with a newline or an escape sequence must
        # not be able to print a line of its own (a forged "ok:") or repaint the terminal.
        where = printable(f"{self.file}:{self.line}:{self.column}")
        message = printable(self.message)
        return f"{where}: {printable(self.path)}: {message}" if self.path else f"{where}: {message}"


def printable(text: str) -> str:
    """text with every non-printable character (control, format, line separator) escaped."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


class LabfileError(LabctlError):
    exit_code = EXIT_USAGE

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(
            "\n".join(str(p) for p in self.problems), f"{count} {noun} found; nothing was changed"
        )


class StateError(LabctlError):
    pass


class HostError(LabctlError):
    pass


class BoxError(LabctlError):
    pass


class DriverError(LabctlError):
    pass


class MachineTimeout(DriverError):
    """A machine did not finish a phase (boot, address, ssh, first boot) in time."""


class ProvisionError(LabctlError):
    pass


class CommandError(LabctlError):
    """An external command exited non-zero (or could not start)."""

    def __init__(
        self,
        argv: Sequence[str],
        returncode: int,
        stdout: str = "",
        stderr: str = "",
        hint: str | None = None,
    ) -> None:
        self.argv = tuple(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        detail = _tail(stderr or stdout)
        message = f"`{_short(argv)}` exited {returncode}"
        if detail:
            message += f": {detail}"
        super().__init__(message, hint)


def _short(argv: Sequence[str]) -> str:
    import shlex

    text = shlex.join(argv)
    return text if len(text) <= 200 else text[:197] + "..."


def _tail(text: str, lines: int = 5) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()][-lines:]
    return "\n  ".join(kept)
