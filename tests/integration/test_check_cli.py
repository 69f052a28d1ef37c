"""`labctl check` on a real lab: an LXC system container and two ns containers, one serving
HTTP. Each probe kind (command, HTTP, TCP) is shown to pass and to fail with the detail a
student reads, on machines and on the host; a stopped machine's checks fail without hanging."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_containers import host_traces, labctl
from tests_support import free_subnet

from labctl.box import Box
from labctl.labfile import load_lab
from labctl.labfile.models import Lab

pytestmark = pytest.mark.integration


def labfile(subnet: str) -> str:
    prefix = subnet.rsplit(".", 1)[0]
    web = f"{prefix}.10"
    return textwrap.dedent(f"""\
        name: checks
        networks:
          lan: {{cidr: {subnet}}}
        machines:
          sys: {{kind: lxc, box: debian-12, memory: 256M, networks: [lan]}}
          web:
            kind: ns
            box: debian-12
            memory: 64M
            command: [python3, -m, http.server, '80', --directory, /etc]
            networks: [{{name: lan, ip: {web}}}]
          cli: {{kind: ns, box: debian-12, memory: 64M, networks: [lan]}}
        checks:
          - {{name: lxc-hostname, step: 1-exec, on: sys, run: hostname, stdout: '^sys$'}}
          - {{name: lxc-hostname-wrong, step: 1-exec, on: sys, run: hostname, stdout: '^student$'}}
          - {{name: exit-code, step: 1-exec, on: cli, run: [sh, -c, 'exit 3'], exit: 3}}
          - {{name: exit-wrong, step: 1-exec, on: cli, run: 'echo no such thing >&2; exit 1'}}
          - {{name: stderr-match, step: 1-exec, on: cli, run: 'ls /nowhere', exit: 2, stderr: 'No such file'}}
          - name: http-ok
            step: 2-net
            on: cli
            http: {{url: 'http://{web}/hostname', body: '^web$'}}
            retries: 20
            interval: 250ms
          - {{name: http-404, step: 2-net, on: sys, http: {{url: 'http://{web}/absent', status: 404}}}}
          - {{name: http-wrong, step: 2-net, on: cli, http: {{url: 'http://{web}/absent'}}}}
          - {{name: tcp-open, step: 2-net, on: sys, tcp: {{host: {web}, port: 80}}}}
          - {{name: tcp-closed, step: 2-net, on: cli, tcp: {{host: {web}, port: 81, open: false}}}}
          - {{name: tcp-wrong, step: 2-net, on: cli, tcp: {{host: {web}, port: 81}}}}
          - {{name: host-http, step: 3-host, on: host, http: {{url: 'http://{web}/hostname', body: web}}}}
          - name: host-asks-labctl
            step: 3-host
            on: host
            run: 'labctl -f "$LABCTL_LABFILE" --json status web | grep -q running && test -f labfile.yml'
          - {{name: slow, step: 4-time, on: cli, run: 'sleep 10', timeout: 1s}}
        """)


EXPECTED_FAILURES = {
    "lxc-hostname-wrong": "stdout did not match '^student$': got 'sys'",
    "exit-wrong": "exit 1, expected 0: no such thing",
    "http-wrong": "status 404, expected 200",
    "tcp-wrong": "is closed (Connection refused), expected open",
    "slow": "timed out after 1 s",
}


@pytest.fixture(scope="module")
def lab(debian_box: Box, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    labdir = tmp_path_factory.mktemp("checks")
    (labdir / "labfile.yml").write_text(labfile(free_subnet()))
    loaded = load_lab(str(labdir / "labfile.yml"))
    result = labctl(labdir, "up")
    assert result.returncode == 0, result.stdout + result.stderr
    yield loaded
    labctl(labdir, "destroy")


def check_json(labdir: Path, *args: str) -> tuple[int, dict[str, Any]]:
    result = labctl(labdir, "--json", "check", *args)
    assert result.returncode in (0, 1), result.stdout + result.stderr
    return result.returncode, json.loads(result.stdout)


def test_every_probe_passes_or_fails_with_its_detail(lab: Lab) -> None:
    code, report = check_json(lab.root)
    by_name = {c["name"]: c for c in report["checks"]}
    assert [c["name"] for c in report["checks"]] == [c.name for c in lab.checks]
    failed = {name for name, c in by_name.items() if not c["passed"]}
    assert failed == set(EXPECTED_FAILURES), json.dumps(report, indent=2)
    for name, detail in EXPECTED_FAILURES.items():
        assert detail in by_name[name]["detail"], by_name[name]
    assert code == 1
    assert (report["passed"], report["failed"]) == (len(lab.checks) - len(failed), len(failed))
    assert by_name["slow"]["seconds"] < 9  # the attempt was cut at its timeout, not waited out


def test_selected_checks_that_pass_exit_zero_with_a_table(lab: Lab) -> None:
    result = labctl(lab.root, "check", "--step", "3-host", "tcp-open", "exit-code")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["STEP", "CHECK", "MACHINE", "RESULT", "SECONDS", "DETAIL"]
    rows = {line.split()[1]: line.split() for line in lines[1:]}
    assert set(rows) == {"exit-code", "tcp-open", "host-http", "host-asks-labctl"}
    assert all(row[3] == "PASS" for row in rows.values())
    assert "4 of 4 checks passed" in result.stderr


def test_a_failing_selection_exits_one_and_names_what_differed(lab: Lab) -> None:
    result = labctl(lab.root, "check", "exit-wrong")
    assert result.returncode == 1
    assert "FAIL" in result.stdout and "exit 1, expected 0: no such thing" in result.stdout


def test_unknown_names_and_steps_are_usage_errors(lab: Lab) -> None:
    unknown = labctl(lab.root, "check", "no-such-check")
    assert unknown.returncode == 2 and "no check named no-such-check" in unknown.stderr
    step = labctl(lab.root, "check", "--step", "9-none")
    assert step.returncode == 2 and "steps: 1-exec, 2-net, 3-host, 4-time" in step.stderr


def test_checks_of_a_stopped_machine_fail_at_once(lab: Lab) -> None:
    halted = labctl(lab.root, "halt", "cli")
    assert halted.returncode == 0, halted.stderr
    code, report = check_json(lab.root, "--step", "1-exec")
    by_name = {c["name"]: c for c in report["checks"]}
    assert code == 1
    assert by_name["exit-code"]["detail"] == "machine is not running"
    assert by_name["lxc-hostname"]["passed"]
    again = labctl(lab.root, "up", "cli")
    assert again.returncode == 0, again.stdout + again.stderr
    code, _ = check_json(lab.root, "exit-code")
    assert code == 0


def test_destroy_leaves_nothing(lab: Lab) -> None:
    result = labctl(lab.root, "destroy")
    assert result.returncode == 0, result.stderr
    assert not any(host_traces(lab).values()), host_traces(lab)
    assert load_lab(str(lab.file)).checks == lab.checks
