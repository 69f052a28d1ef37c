"""The `checks:` section and the check runner, from the user's side: a labfile in, validate's
errors or `labctl check`'s verdicts out. The runner is driven with a scripted executor here; the
integration test (tests/integration/test_check_cli.py) runs the same probes on real machines."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from labctl import checks
from labctl.checks import Answer, run_check
from labctl.cli import main
from labctl.cli.check import select
from labctl.errors import CommandError, UsageError
from labctl.labfile import load_lab
from labctl.labfile.models import Check, HttpProbe, RunProbe, TcpProbe

MACHINES = """\
name: course
machines:
  web: {kind: ns, box: debian-12}
  cli: {kind: lxc, box: debian-12}
"""


def errors_for(
    write: Callable[[str], Path], capsys: pytest.CaptureFixture[str], checks_text: str
) -> list[str]:
    write(MACHINES + checks_text)
    code = main(["validate"])
    err = capsys.readouterr().err.splitlines()
    assert code == 2, err
    return [line.removeprefix("error: ") for line in err if line.startswith(("error: ", "labfile.yml:"))]


def test_a_valid_section_becomes_typed_checks(write_labfile: Callable[[str], Path]) -> None:
    path = write_labfile(
        MACHINES
        + """\
checks:
  - {name: hostname, step: 1-uts, on: web, run: hostname, stdout: '^web$', retries: 2, interval: 500ms, timeout: 2m}
  - {name: argv, on: cli, run: [cat, /etc/os-release], exit: 1, stderr: 'No such'}
  - {name: page, on: host, http: {url: 'http://10.1.2.3:8080/x', status: 404, body: 'gone'}}
  - {name: port, on: cli, tcp: {host: db.lab, port: 5432, open: false}}
  - {name: default-port, description: the web server answers, on: web, tcp: {host: 10.1.2.3, port: 80}}
"""
    )
    lab = load_lab(str(path))
    by_name = {c.name: c for c in lab.checks}
    hostname = by_name["hostname"]
    assert hostname.probe == RunProbe(("sh", "-c", "hostname"), "hostname", 0, re.compile("^web$", re.M))
    assert (hostname.step, hostname.retries, hostname.interval, hostname.timeout) == ("1-uts", 2, 0.5, 120.0)
    argv = by_name["argv"]
    assert isinstance(argv.probe, RunProbe) and argv.probe.argv == ("cat", "/etc/os-release")
    assert argv.probe.exit == 1 and (argv.retries, argv.interval, argv.timeout) == (0, 1.0, 30.0)
    assert by_name["page"].probe == HttpProbe("http://10.1.2.3:8080/x", 404, re.compile("gone", re.M))
    assert by_name["page"].on == "host"
    assert by_name["port"].probe == TcpProbe("db.lab", 5432, False)
    assert by_name["default-port"].probe == TcpProbe("10.1.2.3", 80, True)
    assert by_name["default-port"].description == "the web server answers"


def test_validate_counts_the_checks(
    write_labfile: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    write_labfile(MACHINES + "checks:\n  - {name: a, on: web, run: 'true'}\n")
    assert main(["validate"]) == 0
    assert capsys.readouterr().out.strip() == "ok: lab course: 1 lxc, 1 ns; 1 network; 1 check"


def test_every_mistake_is_reported_at_its_line(
    write_labfile: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    errors = errors_for(
        write_labfile,
        capsys,
        """\
checks:
  - name: one
    on: web
    run: hostname
  - name: one
    on: dbserver
    run: []
  - name: Bad_Name
    on: host
    http: {url: 'ftp://x', status: 700, body: '('}
    exit: 3
  - name: t
    on: web
    tcp: {host: 'no such host', port: 0, open: maybe}
    timeout: lots
    step: Weird Step
  - {name: none, on: cli}
  - {name: two, on: cli, run: 'true', tcp: {host: a, port: 1}}
  - {name: http-no-url, on: cli, http: {status: 200}}
  - {name: tcp-no-port, on: cli, tcp: {host: a}}
  - {on: cli, run: 'true', colour: red}
""",
    )
    assert errors == [
        "labfile.yml:9:11: checks[1].name: check 'one' is already defined (checks[0])",
        "labfile.yml:10:9: checks[1].on: expected a machine of this lab (cli | web | host), got 'dbserver'",
        "labfile.yml:11:10: checks[1].run: expected shell text or a non-empty list of words, got an empty list",
        "labfile.yml:12:11: checks[2].name: 'Bad_Name' is not a valid check name: use 1-63 lowercase "
        "letters, digits and hyphens, starting and ending with a letter or digit",
        "labfile.yml:14:17: checks[2].http.url: expected an http:// or https:// URL with a host, got 'ftp://x'",
        "labfile.yml:14:36: checks[2].http.status: must be from 100 to 599, got 700",
        "labfile.yml:14:47: checks[2].http.body: not a valid regular expression "
        "(missing ), unterminated subpattern at position 0): '('",
        "labfile.yml:15:5: checks[2].exit: 'exit' belongs to a run check; this one is an http check",
        "labfile.yml:18:17: checks[3].tcp.host: expected a host name or IPv4 address, got 'no such host'",
        "labfile.yml:18:39: checks[3].tcp.port: must be from 1 to 65535, got 0",
        "labfile.yml:18:48: checks[3].tcp.open: expected true or false, got text 'maybe'",
        "labfile.yml:19:14: checks[3].timeout: expected a duration like 500ms, 10s or 2m, got 'lots'",
        "labfile.yml:20:11: checks[3].step: expected a step label such as 1-uts (lowercase letters, "
        "digits, '.' and '-', at most 32), got 'Weird Step'",
        "labfile.yml:21:5: checks[4]: a check has exactly one of run, http or tcp; this one has none",
        "labfile.yml:22:5: checks[5]: a check has exactly one of run, http or tcp; this one has run and tcp",
        "labfile.yml:23:34: checks[6].http: missing key 'url' (for example url: http://10.213.7.10/)",
        "labfile.yml:24:34: checks[7].tcp: missing key 'port'",
        "labfile.yml:25:5: checks[8]: missing key 'name': every check has a name, such as web-answers",
        "labfile.yml:25:28: checks[8].colour: unknown key",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("checks: {a: 1}\n", "checks: expected a list of checks, got a mapping"),
        ("checks:\n  - just text\n", "checks[0]: expected a mapping of check settings, got text 'just text'"),
        (
            "checks:\n  - {name: a, on: web, run: 'true', retries: -1}\n",
            "checks[0].retries: must be from 0 to 1000",
        ),
        (
            "checks:\n  - {name: a, on: web, run: 'true', timeout: 0}\n",
            "checks[0].timeout: must be from 0.1 s",
        ),
        (
            "checks:\n  - {name: a, on: web, run: 'true', interval: 2h}\n",
            "checks[0].interval: must be from 0 s",
        ),
        (
            "checks:\n  - {name: a, on: web, run: 'true', exit: 256}\n",
            "checks[0].exit: must be from 0 to 255",
        ),
        (
            "checks:\n  - {name: a, on: web, run: 'true', stdout: '" + "a" * 1001 + "'}\n",
            "at most 1000 characters",
        ),
        ("checks:\n  - {name: a, on: web, run: '   '}\n", "checks[0].run: the command is empty"),
        (
            "checks:\n  - {name: a, on: web, run: [test, 1, -eq, 1]}\n",
            "word 1 of the command is a number (1); quote it",
        ),
        ("checks:\n  - {name: a, on: [web], run: x}\n", "checks[0].on: expected a machine of this lab"),
        ("checks:\n  - {name: a, on: web, http: {url: 'http://a b/'}}\n", "may not contain spaces"),
        ("checks:\n  - {name: a, on: web, http: {url: 'http://a:99999/'}}\n", "port is not a number"),
        ('checks:\n  - {name: a, on: web, description: "x\\ny", run: x}\n', "a description is one line"),
    ],
)
def test_single_mistakes(
    write_labfile: Callable[[str], Path], capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    errors = errors_for(write_labfile, capsys, text)
    assert len(errors) == 1 and message in errors[0], errors


def test_a_machine_named_host_is_refused_when_checks_could_mean_either(
    write_labfile: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    write_labfile(
        "machines:\n  host: {kind: ns, box: debian-12}\nchecks:\n  - {name: a, on: host, run: 'true'}\n"
    )
    assert main(["validate"]) == 2
    assert "machines.host: a machine may not be named 'host'" in capsys.readouterr().err


def test_a_check_on_an_invalid_machine_is_not_reported_twice(
    write_labfile: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    write_labfile("machines:\n  web: {kind: nope}\nchecks:\n  - {name: a, on: web, run: 'true'}\n")
    assert main(["validate"]) == 2
    err = capsys.readouterr().err
    assert "machines.web.kind" in err and "checks[0]" not in err


# -- the runner --------------------------------------------------------------------------------


def scripted(
    *answers: Answer | Exception,
) -> tuple[list[Sequence[str]], Callable[[Sequence[str], float], Answer]]:
    calls: list[Sequence[str]] = []
    queue = list(answers)

    def execute(argv: Sequence[str], timeout: float) -> Answer:
        calls.append(argv)
        item = queue.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    return calls, execute


def run_probe(**fields: object) -> RunProbe:
    defaults: dict[str, object] = {"argv": ("sh", "-c", "x"), "shown": "x"}
    return RunProbe(**{**defaults, **fields})  # type: ignore[arg-type]


def test_retries_until_the_probe_passes() -> None:
    calls, execute = scripted(Answer(1, "", "not yet"), Answer(1, "", "not yet"), Answer(0, "ok\n", ""))
    outcome = run_check(Check("c", "web", run_probe(), retries=5, interval=0), execute)
    assert (outcome.passed, outcome.attempts, outcome.detail) == (True, 3, "")
    assert len(calls) == 3


def test_the_last_failure_is_the_detail_when_retries_run_out() -> None:
    _, execute = scripted(Answer(1, "", "first"), Answer(2, "", "second"))
    outcome = run_check(Check("c", "web", run_probe(), retries=1, interval=0), execute)
    assert (outcome.passed, outcome.attempts, outcome.detail) == (False, 2, "exit 2, expected 0: second")


@pytest.mark.parametrize(
    ("probe", "answer", "detail"),
    [
        (
            run_probe(stdout=re.compile("^web$", re.M)),
            Answer(0, "lab-1\nweb2\n", ""),
            "stdout did not match '^web$': got 'lab-1'",
        ),
        (run_probe(stdout=re.compile("^web$", re.M)), Answer(0, "other\nweb\n", ""), ""),
        (
            run_probe(stderr=re.compile("denied")),
            Answer(0, "", "ok"),
            "stderr did not match 'denied': got 'ok'",
        ),
        (run_probe(exit=3), Answer(3, "", ""), ""),
        (run_probe(exit=3), Answer(0, "\n  all fine\n", ""), "exit 0, expected 3: all fine"),
        (HttpProbe("http://w/"), Answer(0, "200\n<html>", ""), ""),
        (HttpProbe("http://w/"), Answer(0, "503\nbusy", ""), "GET http://w/: status 503, expected 200"),
        (
            HttpProbe("http://w/", body=re.compile("hello")),
            Answer(0, "200\nbye\n", ""),
            "GET http://w/: body did not match 'hello': got 'bye'",
        ),
        (
            HttpProbe("http://w/"),
            Answer(3, "", "[Errno 111] Connection refused\n"),
            "GET http://w/: [Errno 111] Connection refused",
        ),
        (
            HttpProbe("http://w/"),
            Answer(127, "", "sh: python3: not found"),
            "python3 is missing where the check runs (http and tcp checks use it)",
        ),
        (TcpProbe("db", 5432), Answer(0, "open\n", ""), ""),
        (
            TcpProbe("db", 5432),
            Answer(0, "closed Connection refused\n", ""),
            "tcp db:5432 is closed (Connection refused), expected open",
        ),
        (TcpProbe("db", 5432, open=False), Answer(0, "open\n", ""), "tcp db:5432 is open, expected closed"),
        (TcpProbe("db", 5432, open=False), Answer(0, "closed timed out\n", ""), ""),
    ],
)
def test_each_probe_names_the_first_thing_that_differed(
    probe: RunProbe | HttpProbe | TcpProbe, answer: Answer, detail: str
) -> None:
    _, execute = scripted(answer)
    assert run_check(Check("c", "web", probe), execute).detail == detail


def test_a_timeout_and_a_driver_error_are_failures_not_crashes() -> None:
    _, execute = scripted(
        CommandError(["lxc-attach"], -1, "", "timed out after 2 s"),
        CommandError(["lxc-attach"], 1, "", "no such container"),
    )
    timed = run_check(Check("c", "web", run_probe(), timeout=2), execute)
    broken = run_check(Check("c", "web", run_probe()), execute)
    assert timed.detail == "timed out after 2 s"
    assert broken.detail == "`lxc-attach` exited 1: no such container"


def test_http_and_tcp_run_python_with_their_arguments_never_in_program_text() -> None:
    argv = checks.probe_argv(HttpProbe("http://w/'; rm -rf /"), 10)
    assert (
        argv[:2] == ["python3", "-c"]
        and argv[2] == checks.HTTP_PROGRAM
        and argv[3:] == ["http://w/'; rm -rf /", "9.000"]
    )
    assert checks.probe_argv(TcpProbe("db", 5432), 1)[3:] == ["db", "5432", "0.900"]


def test_the_probe_programs_work_on_this_host() -> None:
    """The programs the probes run are real Python: a closed local port reads as closed."""
    import subprocess
    import sys

    tcp = subprocess.run(
        [sys.executable, *checks.probe_argv(TcpProbe("127.0.0.1", 9), 2)[1:]],
        capture_output=True,
        text=True,
        check=False,
    )
    assert tcp.stdout.startswith("closed"), tcp
    http = subprocess.run(
        [sys.executable, *checks.probe_argv(HttpProbe("http://127.0.0.1:9/"), 2)[1:]],
        capture_output=True,
        text=True,
        check=False,
    )
    assert http.returncode == checks.PROBE_FAILED and http.stderr.strip(), http


def test_select_takes_names_or_steps_and_refuses_unknown_ones(write_labfile: Callable[[str], Path]) -> None:
    path = write_labfile(
        MACHINES
        + """\
checks:
  - {name: a, step: "1", on: web, run: 'true'}
  - {name: b, step: "2", on: web, run: 'true'}
  - {name: c, step: "2", on: cli, run: 'true'}
  - {name: d, on: cli, run: 'true'}
"""
    )
    lab = load_lab(str(path))
    assert [c.name for c in select(lab, [], [])] == ["a", "b", "c", "d"]
    assert [c.name for c in select(lab, ["d"], ["2"])] == ["b", "c", "d"]
    with pytest.raises(UsageError, match="no check named zz"):
        select(lab, ["zz"], [])
    with pytest.raises(UsageError, match="no step 9") as raised:
        select(lab, [], ["9"])
    assert raised.value.hint == "steps: 1, 2"


def test_a_lab_without_checks_is_a_usage_error(
    write_labfile: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    write_labfile(MACHINES)
    assert main(["check"]) == 2
    assert "lab course has no checks" in capsys.readouterr().err
