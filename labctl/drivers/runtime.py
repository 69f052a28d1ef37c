"""The OCI runtime (runc, or crun where it works) behind a few verbs, with its own state dir.

Every call passes --root under the lab's data dir, so labctl's containers never appear in (or
collide with) the host's other runc containers, and `runc --root <dir> list` shows exactly them.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Sequence
from pathlib import Path

from labctl import cgroups
from labctl.errors import DriverError
from labctl.run import DEVNULL, run, start, stream, which

CREATE_TIMEOUT = 60.0


@functools.cache
def runtime_name() -> str:
    """runc, unless crun is installed and the host has the unified cgroup layout crun needs here.

    LABCTL_OCI_RUNTIME overrides the probe (for `labctl doctor` comparisons and tests).
    """
    chosen = os.environ.get("LABCTL_OCI_RUNTIME")
    if chosen in ("runc", "crun"):
        return chosen
    if which("crun") and cgroups.layout() is cgroups.Layout.V2:
        return "crun"
    return "runc"


class Runtime:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir

    def _argv(self, *args: str | os.PathLike[str]) -> list[str | os.PathLike[str]]:
        return [runtime_name(), "--root", self.state_dir, *args]

    def status(self, container: str) -> str | None:
        """created, running, paused or stopped; None when the runtime does not know it."""
        if not (self.state_dir / container).exists():
            return None
        result = run(self._argv("state", container), check=False)
        if result.returncode != 0:
            return None
        status: str = json.loads(result.stdout).get("status", "unknown")
        return status

    def pid(self, container: str) -> int | None:
        result = run(self._argv("state", container), check=False)
        if result.returncode != 0:
            return None
        pid = json.loads(result.stdout).get("pid")
        return int(pid) if pid else None

    def create(self, container: str, bundle: Path, log: Path) -> int:
        """`runc create`: detached, the container's stdio in a log file, no console; returns its pid.

        The process waits in the runtime until start(), so its namespaces can be set up first."""
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(log, "ab") as out:
            proc = start(
                self._argv("create", "--bundle", bundle, "--pid-file", bundle / "init.pid", container),
                stdin=DEVNULL,
                stdout=out.fileno(),
                stderr=out.fileno(),
            )
            returncode = proc.wait(timeout=CREATE_TIMEOUT)
        if returncode != 0:
            raise DriverError(f"{runtime_name()} could not create {container}: {_tail(log)}", f"see {log}")
        pid = self.pid(container)
        if pid is None:
            raise DriverError(f"{runtime_name()} created {container} but reports no process", f"see {log}")
        return pid

    def start(self, container: str) -> None:
        run(self._argv("start", container))

    def kill(self, container: str, signal: str) -> None:
        run(self._argv("kill", "--all", container, signal), check=False)

    def delete(self, container: str) -> None:
        if self.status(container) is not None:
            run(self._argv("delete", "--force", container))

    def ids(self) -> list[str]:
        if not self.state_dir.exists():
            return []
        result = run(self._argv("list", "--format", "json"))
        return [entry["id"] for entry in json.loads(result.stdout or "null") or []]

    def exec_argv(self, container: str, argv: Sequence[str], tty: bool) -> list[str | os.PathLike[str]]:
        return self._argv("exec", *(["--tty"] if tty else []), container, *argv)

    def exec(self, container: str, argv: Sequence[str], tty: bool) -> int:
        return stream(self.exec_argv(container, argv, tty))


def _tail(log: Path, lines: int = 3) -> str:
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return "no log"
    return " ".join(text.strip().splitlines()[-lines:]) or "no output"
