"""How provisioning reaches one machine: SSH (paramiko) when it runs sshd, else its runtime.

Both transports offer the same three operations, so a step runs unchanged on every kind:

    stream(argv, on_line)       run argv, each output line to on_line as it comes; the exit code
    extract(archive, directory) unpack a tar stream (labctl.provision.archive) into the machine
    write(data, dest, mode)     create one file in the machine from bytes

Files travel as a tar stream into the machine's `tar -x` on both, so they need nothing but tar,
and a symlink in the lab directory arrives as a symlink, never as what it points at.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import IO, TYPE_CHECKING, Protocol, cast

from labctl.errors import DriverError

if TYPE_CHECKING:
    from labctl import ssh as sshlib
    from labctl.drivers import Driver, LabContext
    from labctl.labfile.models import Machine

LineHandler = Callable[[str], None]

# `sh -c` bodies that take the path as "$1": no user text is ever pasted into a shell line.
WRITE_FILE = 'umask 077 && mkdir -p "$(dirname "$1")" && cat > "$1" && chmod "$2" "$1"'
EXTRACT_INTO = 'mkdir -p "$1" && exec tar -x -f - -C "$1" --no-same-owner'


class Transport(Protocol):
    def stream(self, argv: Sequence[str], on_line: LineHandler, *, input: bytes | None = None) -> int: ...

    def extract(self, archive: bytes, directory: str) -> None: ...

    def write(self, data: bytes, dest: str, mode: int) -> None: ...

    def close(self) -> None: ...


class LineSplitter:
    """Bytes in, whole lines out (decoded leniently); the last partial line on flush_all()."""

    def __init__(self, on_line: LineHandler) -> None:
        self.on_line = on_line
        self._pending = b""

    def write(self, data: bytes) -> int:
        *lines, self._pending = (self._pending + data).split(b"\n")
        for line in lines:
            self.on_line(line.rstrip(b"\r").decode(errors="replace"))
        return len(data)

    def flush(self) -> None:
        """Called by writers after each chunk; a line is only complete at its newline."""

    def flush_all(self) -> None:
        if self._pending:
            self.on_line(self._pending.rstrip(b"\r").decode(errors="replace"))
            self._pending = b""


class SshTransport:
    """A machine with sshd, through labctl.ssh: host key checked against the lab's known_hosts."""

    def __init__(self, session: sshlib.Session) -> None:
        self.session = session

    @classmethod
    def connect(cls, endpoint: sshlib.Endpoint) -> SshTransport:
        from labctl import ssh as sshlib

        return cls(sshlib.connect(endpoint, timeout=60.0))

    def stream(self, argv: Sequence[str], on_line: LineHandler, *, input: bytes | None = None) -> int:
        out, err = LineSplitter(on_line), LineSplitter(on_line)
        stdin = io.BytesIO(input) if input is not None else None
        try:
            return self.session.exec(argv, stdin=stdin, stdout=_as_io(out), stderr=_as_io(err))
        finally:
            out.flush_all()
            err.flush_all()

    def extract(self, archive: bytes, directory: str) -> None:
        self._check(["sh", "-c", EXTRACT_INTO, "sh", directory], f"cannot copy into {directory}", archive)

    def write(self, data: bytes, dest: str, mode: int) -> None:
        self._check(["sh", "-c", WRITE_FILE, "sh", dest, f"{mode:o}"], f"cannot write {dest}", data)

    def _check(self, argv: Sequence[str], what: str, input: bytes | None = None) -> None:
        result = self.session.run(argv, input=input)
        if result.returncode != 0:
            raise DriverError(f"{what}: {(result.stderr or result.stdout).strip() or result.returncode}")

    def close(self) -> None:
        self.session.close()


class RuntimeTransport:
    """A machine without sshd, through its driver's run() (runc exec for namespace containers)."""

    def __init__(self, driver: Driver, machine: Machine) -> None:
        self.driver = driver
        self.machine = machine

    def stream(self, argv: Sequence[str], on_line: LineHandler, *, input: bytes | None = None) -> int:
        return self.driver.run_streaming(self.machine, argv, on_line, input=input)

    def extract(self, archive: bytes, directory: str) -> None:
        self._check(["sh", "-c", EXTRACT_INTO, "sh", directory], f"cannot copy into {directory}", archive)

    def write(self, data: bytes, dest: str, mode: int) -> None:
        self._check(["sh", "-c", WRITE_FILE, "sh", dest, f"{mode:o}"], f"cannot write {dest}", data)

    def _check(self, argv: Sequence[str], what: str, input: bytes) -> None:
        result = self.driver.run(self.machine, argv, input=input)
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip() or f"exit code {result.returncode}"
            raise DriverError(f"{what} in {self.machine.name}: {detail}")

    def close(self) -> None:
        pass


def open_transport(context: LabContext, driver: Driver, machine: Machine) -> Transport:
    """SSH when the driver says the machine runs sshd, else the driver's own runtime."""
    target = driver.ssh_target(machine)
    if target is None:
        return RuntimeTransport(driver, machine)
    from labctl import ssh as sshlib

    endpoint = sshlib.Endpoint(
        target.host, target.port, target.user, target.key, context.known_hosts, target.jump
    )
    return SshTransport.connect(endpoint)


def _as_io(sink: LineSplitter) -> IO[bytes]:
    # labctl.ssh only calls write() and flush() on its output streams.
    return cast("IO[bytes]", sink)
