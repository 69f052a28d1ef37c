"""A small paramiko client: connect with retries while a guest boots, run commands, copy files.

The host key is always checked against the lab's known_hosts file (labctl wrote the key there
before the machine first booted); an unknown key is rejected and a changed one is an error that
names the exact `ssh-keygen -R` line. paramiko and socket errors become DriverError here.
"""

from __future__ import annotations

import contextlib
import io
import os
import select
import shlex
import socket
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from labctl.errors import DriverError, LabctlError, MachineTimeout

if TYPE_CHECKING:
    from labctl.sshjump import JumpHost

CHUNK = 32768
# paramiko waits an hour by default for a channel on a transport whose peer went silent.
CHANNEL_OPEN_TIMEOUT = 60.0


class StaleSession(DriverError):
    """A channel could not be opened on a cached session: the command never started, so a
    caller may safely retry it on a new session."""


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    user: str
    key_path: Path
    known_hosts: Path
    jump: JumpHost | None = None  # the remote libvirt host's sshd, for VMs on that host

    def __str__(self) -> str:
        via = f" via {self.jump}" if self.jump else ""
        return f"{self.user}@{self.host}:{self.port}{via}"


@dataclass(frozen=True)
class Output:
    returncode: int
    stdout: str
    stderr: str


def host_key_changed(endpoint: Endpoint) -> LabctlError:
    name = endpoint.host if endpoint.port == 22 else f"[{endpoint.host}]:{endpoint.port}"
    return LabctlError(
        f"the SSH host key of {endpoint.host} changed: it is not the key labctl gave this machine",
        f"if the machine was rebuilt outside labctl, reset it with: ssh-keygen -f {endpoint.known_hosts} -R {shlex.quote(name)}",
    )


@contextlib.contextmanager
def ssh_errors(what: str) -> Iterator[None]:
    """Turn paramiko and socket errors inside the block into a DriverError saying what failed."""
    import paramiko

    try:
        yield
    except paramiko.BadHostKeyException as exc:
        raise DriverError(f"{what}: the host key changed ({exc})") from exc
    except (paramiko.SSHException, OSError, EOFError) as exc:
        raise DriverError(f"{what}: {_reason(exc)}") from exc


def _reason(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


def wait_for_port(host: str, port: int, timeout: float, jump: JumpHost | None = None) -> None:
    """Return once host answers on port (accepting or refusing: its address is up).

    Through a jump host only an accepted connection can be told apart.
    """
    if jump is not None:
        from labctl import sshjump

        sshjump.wait_for_port(jump, host, port, timeout)
        return
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=2.0):
                return
        except ConnectionRefusedError:
            return
        except OSError:
            if time.monotonic() >= deadline:
                raise MachineTimeout(f"{host} did not answer on port {port} within {timeout:.0f} s") from None
            time.sleep(0.2)


def connect(endpoint: Endpoint, timeout: float = 60.0) -> Session:
    """An authenticated session; retries with backoff until timeout while the guest boots."""
    import paramiko

    deadline = time.monotonic() + timeout
    delay = 0.2
    while True:
        try:
            return Session(_connect_once(endpoint))
        except paramiko.BadHostKeyException as exc:
            raise host_key_changed(endpoint) from exc
        except (paramiko.SSHException, OSError, EOFError) as exc:
            reason = _reason(exc)
        if time.monotonic() + delay >= deadline:
            raise MachineTimeout(f"cannot log in to {endpoint} over SSH within {timeout:.0f} s: {reason}")
        time.sleep(delay)
        delay = min(delay * 2, 2.0)


def _connect_once(endpoint: Endpoint) -> Any:
    import paramiko

    client = paramiko.SSHClient()
    # Only the lab's own known_hosts, and never trust an unknown key (no AutoAddPolicy).
    client.load_host_keys(str(endpoint.known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        sock = None
        if endpoint.jump is not None:
            from labctl import sshjump

            sock = sshjump.open_channel(endpoint.jump, endpoint.host, endpoint.port)
        client.connect(
            endpoint.host,
            port=endpoint.port,
            username=endpoint.user,
            key_filename=str(endpoint.key_path),
            look_for_keys=False,
            allow_agent=False,
            timeout=5.0,
            banner_timeout=30.0,
            auth_timeout=30.0,
            sock=sock,
        )
    except BaseException:
        client.close()
        raise
    return client


class Session:
    """One SSH connection; run commands and copy files over it."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def exec(
        self,
        argv: Sequence[str],
        *,
        stdin: IO[bytes] | None = None,
        stdout: IO[bytes] | None = None,
        stderr: IO[bytes] | None = None,
        tty: bool = False,
        timeout: float | None = None,
    ) -> int:
        """Run argv (shlex-joined) streaming its output to stdout/stderr; return its exit code."""
        command = shlex.join(argv)
        chan = self._open_channel(command)
        with ssh_errors(f"cannot run {command!r}"):
            if tty:
                columns, lines = _terminal_size()
                chan.get_pty(term=os.environ.get("TERM", "xterm"), width=columns, height=lines)
            chan.exec_command(command)
            if stdin is not None:
                threading.Thread(target=_forward, args=(stdin, chan), daemon=True).start()
            else:
                chan.shutdown_write()
            return _pump(chan, stdout or sys.stdout.buffer, stderr or sys.stderr.buffer, timeout, command)

    def _open_channel(self, command: str) -> Any:
        import paramiko

        try:
            return self.client.get_transport().open_session(timeout=CHANNEL_OPEN_TIMEOUT)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise StaleSession(f"cannot run {command!r}: {_reason(exc)}") from exc

    def run(self, argv: Sequence[str], *, input: bytes | None = None, timeout: float | None = None) -> Output:
        """Run argv and capture its output."""
        out, err = io.BytesIO(), io.BytesIO()
        code = self.exec(
            argv, stdin=io.BytesIO(input) if input else None, stdout=out, stderr=err, timeout=timeout
        )
        text = out.getvalue().decode(errors="replace"), err.getvalue().decode(errors="replace")
        return Output(code, *text)


def _forward(source: IO[bytes], chan: Any) -> None:
    """Copy source into the channel until EOF, then close our side so the command sees EOF."""
    with contextlib.suppress(OSError, EOFError):
        fileno = _fileno(source)
        while True:
            data = os.read(fileno, CHUNK) if fileno is not None else source.read(CHUNK)
            if not data:
                break
            chan.sendall(data)
    with contextlib.suppress(OSError, EOFError):
        chan.shutdown_write()


def _fileno(stream: IO[bytes]) -> int | None:
    try:
        return stream.fileno()
    except (OSError, io.UnsupportedOperation, AttributeError):
        return None


def _pump(chan: Any, out: IO[bytes], err: IO[bytes], timeout: float | None, command: str) -> int:
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        busy = False
        if chan.recv_ready():
            _write(out, chan.recv(CHUNK))
            busy = True
        if chan.recv_stderr_ready():
            _write(err, chan.recv_stderr(CHUNK))
            busy = True
        if not busy and chan.exit_status_ready():
            return int(chan.recv_exit_status())
        if deadline is not None and time.monotonic() > deadline:
            chan.close()
            raise DriverError(f"{command!r} did not finish within {timeout:g} s")
        if not busy:
            select.select([chan], [], [], 0.1)


def _write(stream: IO[bytes], data: bytes) -> None:
    stream.write(data)
    stream.flush()


def _terminal_size() -> tuple[int, int]:
    try:
        size = os.get_terminal_size(sys.stdout.fileno())
    except (OSError, ValueError):
        return 80, 24
    return size.columns, size.lines
