"""Run a lab's progress checks: each probe on its machine (through the driver's exec, so every
kind and remote VMs work alike) or on the host, machines in parallel, checks of one machine in
labfile order, each with its retries. The result says, for a failure, the first thing that
differed from the expectation."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from labctl.errors import CommandError, LabctlError
from labctl.labfile.models import HOST, Check, HttpProbe, Lab, Probe, RunProbe, TcpProbe

if TYPE_CHECKING:
    from labctl.lab import LabRunner

MAX_PARALLEL = 8
MAX_SHOWN = 80  # characters of output quoted in a failure's detail

# Run as `python3 -c PROGRAM URL TIMEOUT` in the machine (or on the host). Redirects are not
# followed and proxies are ignored: the check is about what the lab's server itself answers.
HTTP_PROGRAM = """\
import sys, urllib.error, urllib.request
class Keep(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), Keep)
try:
    with opener.open(sys.argv[1], timeout=float(sys.argv[2])) as answer:
        status, body = answer.status, answer.read(1 << 20)
except urllib.error.HTTPError as answer:
    status, body = answer.code, answer.read(1 << 20)
except Exception as exc:
    print(getattr(exc, "reason", exc), file=sys.stderr)
    sys.exit(3)
sys.stdout.write(f"{status}\\n")
sys.stdout.write(body.decode("utf-8", "replace"))
"""
# `python3 -c PROGRAM HOST PORT TIMEOUT`: prints open, or closed and why.
TCP_PROGRAM = """\
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])).close()
except OSError as exc:
    print("closed", exc.strerror or exc)
else:
    print("open")
"""
PROBE_FAILED = 3  # HTTP_PROGRAM's exit code when no answer came


@dataclass(frozen=True)
class Answer:
    """What one attempt of a probe gave."""

    returncode: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class Outcome:
    check: Check
    passed: bool
    seconds: float
    attempts: int
    detail: str = ""  # for a failure: the first thing that differed

    def as_json(self) -> dict[str, object]:
        return {
            "name": self.check.name,
            "step": self.check.step,
            "on": self.check.on,
            "passed": self.passed,
            "seconds": round(self.seconds, 3),
            "attempts": self.attempts,
            "detail": self.detail,
        }


Executor = Callable[[Sequence[str], float], Answer]


def run_checks(runner: LabRunner, checks: Sequence[Check]) -> list[Outcome]:
    """Every check's outcome, in the order given; machines are probed in parallel."""
    by_target: dict[str, list[Check]] = {}
    for check in checks:
        by_target.setdefault(check.on, []).append(check)
    workers = max(1, min(MAX_PARALLEL, len(by_target)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="check") as pool:
        futures = {on: pool.submit(_run_target, runner, on, group) for on, group in by_target.items()}
        results = {id(o.check): o for future in futures.values() for o in future.result()}
    return [results[id(check)] for check in checks]


def _run_target(runner: LabRunner, on: str, checks: Sequence[Check]) -> list[Outcome]:
    if on == HOST:
        execute: Executor | None = host_executor(runner.lab)
    else:
        execute = machine_executor(runner, on)
    if execute is None:
        return [Outcome(check, False, 0.0, 0, "machine is not running") for check in checks]
    return [run_check(check, execute) for check in checks]


def machine_executor(runner: LabRunner, name: str) -> Executor | None:
    """Runs argv in the machine, or None when it is not running (its checks fail at once)."""
    from labctl.drivers import MachineState

    machine = runner.lab.machine(name)
    try:
        running = runner.state_of(machine) is MachineState.RUNNING
    except LabctlError:
        running = False
    if not running:
        return None
    driver = runner.driver(machine.kind)

    def execute(argv: Sequence[str], timeout: float) -> Answer:
        result = driver.run(machine, argv, timeout=timeout)
        return Answer(result.returncode, result.stdout, result.stderr)

    return execute


def host_executor(lab: Lab) -> Executor:
    """Runs argv on the host in the lab's directory; LABCTL_LABFILE and labctl's own bin dir on
    PATH let a host check ask labctl about the lab (labctl -f "$LABCTL_LABFILE" status --json)."""
    from labctl import run

    path = os.pathsep.join([*labctl_bin_dirs(), os.environ.get("PATH", "")])
    env = {"LABCTL_LABFILE": str(lab.file), "PATH": path}

    def execute(argv: Sequence[str], timeout: float) -> Answer:
        if argv[:1] == ["python3"]:
            argv = [sys.executable, *argv[1:]]  # the same interpreter labctl runs on
        result = run.run(argv, check=False, timeout=timeout, cwd=lab.root, env=env)
        return Answer(result.returncode, result.stdout, result.stderr)

    return execute


def labctl_bin_dirs() -> list[str]:
    """Where the running labctl's command is: the script's directory, or the environment's bin/
    when labctl runs as `python -m labctl`."""
    found = []
    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if script is not None and script.name == "labctl":
        found.append(str(script.absolute().parent))
    interpreter_dir = Path(sys.executable).parent  # not resolved: a venv's bin/, not /usr/bin
    if (interpreter_dir / "labctl").is_file() and str(interpreter_dir) not in found:
        found.append(str(interpreter_dir))
    return found


def run_check(check: Check, execute: Executor) -> Outcome:
    """Attempts until the probe meets its expectation or the retries are spent."""
    started = time.monotonic()
    attempts = 0
    detail = ""
    while attempts <= check.retries:
        if attempts:
            time.sleep(check.interval)
        attempts += 1
        detail = attempt(check.probe, execute, check.timeout)
        if not detail:
            return Outcome(check, True, time.monotonic() - started, attempts)
    return Outcome(check, False, time.monotonic() - started, attempts, detail)


def attempt(probe: Probe, execute: Executor, timeout: float) -> str:
    """ "" when the probe met its expectation, else what differed."""
    try:
        answer = execute(probe_argv(probe, timeout), timeout)
    except CommandError as exc:
        if exc.returncode == -1:
            return f"timed out after {timeout:g} s"
        return first_line(exc.message)
    except LabctlError as exc:
        return first_line(exc.message)
    if isinstance(probe, RunProbe):
        return judge_run(probe, answer)
    if answer.returncode == 127:
        return "python3 is missing where the check runs (http and tcp checks use it)"
    if isinstance(probe, HttpProbe):
        return judge_http(probe, answer)
    return judge_tcp(probe, answer)


def probe_argv(probe: Probe, timeout: float) -> list[str]:
    if isinstance(probe, RunProbe):
        return list(probe.argv)
    # The program gives up a little before the attempt's own timeout, to say why.
    inner = f"{max(timeout * 0.9, 0.1):.3f}"
    if isinstance(probe, HttpProbe):
        return ["python3", "-c", HTTP_PROGRAM, probe.url, inner]
    return ["python3", "-c", TCP_PROGRAM, probe.host, str(probe.port), inner]


def judge_run(probe: RunProbe, answer: Answer) -> str:
    if answer.returncode != probe.exit:
        said = first_line(answer.stderr) or first_line(answer.stdout)
        return f"exit {answer.returncode}, expected {probe.exit}" + (f": {said}" if said else "")
    for stream, pattern, text in (
        ("stdout", probe.stdout, answer.stdout),
        ("stderr", probe.stderr, answer.stderr),
    ):
        if pattern is not None and pattern.search(text) is None:
            return f"{stream} did not match {shown(pattern.pattern)}: got {shown(first_line(text))}"
    return ""


def judge_http(probe: HttpProbe, answer: Answer) -> str:
    if answer.returncode != 0:
        return f"GET {probe.url}: {first_line(answer.stderr) or f'exit {answer.returncode}'}"
    status_line, _, body = answer.stdout.partition("\n")
    if status_line != str(probe.status):
        return f"GET {probe.url}: status {status_line}, expected {probe.status}"
    if probe.body is not None and probe.body.search(body) is None:
        return (
            f"GET {probe.url}: body did not match {shown(probe.body.pattern)}: got {shown(first_line(body))}"
        )
    return ""


def judge_tcp(probe: TcpProbe, answer: Answer) -> str:
    said = first_line(answer.stdout)
    is_open = said == "open"
    if not is_open and not said.startswith("closed"):
        return f"tcp {probe.host}:{probe.port}: {first_line(answer.stderr) or f'exit {answer.returncode}'}"
    if is_open == probe.open:
        return ""
    if probe.open:
        reason = said.removeprefix("closed").strip()
        return f"tcp {probe.host}:{probe.port} is closed ({reason}), expected open"
    return f"tcp {probe.host}:{probe.port} is open, expected closed"


def first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


def shown(text: str) -> str:
    return repr(text) if len(text) <= MAX_SHOWN else repr(text[:MAX_SHOWN]) + "..."
