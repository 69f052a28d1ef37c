"""Hostile labfiles (issue 18, items 4, 7 and 12): `labctl validate` never crashes, never prints a
control character the labfile smuggled in, and refuses what `up` could not build or should not
run (URIs that start programs, subnets that shadow the host's own traffic), with a position."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from labctl import libvirt_uri, state_schema
from labctl.cli import main
from labctl.errors import HostError
from labctl.labfile import schema

POSITION = re.compile(r"labfile\.yml:\d+:\d+: ")
NS = "machines: {web: {kind: ns}}\n"


@pytest.fixture(autouse=True)
def _private_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """validate looks for boxes in the store: give it an empty one."""
    monkeypatch.setenv("LABCTL_HOME", str(tmp_path / "home"))


def validate_text(
    labdir: Path, capsys: pytest.CaptureFixture[str], content: str | bytes
) -> tuple[int, str, str]:
    path = labdir / "labfile.yml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    code = main(["validate", "-f", "labfile.yml"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def refused(labdir: Path, capsys: pytest.CaptureFixture[str], content: str | bytes) -> str:
    """The error text of a labfile validate must refuse: exit 2, every problem with a position."""
    code, out, err = validate_text(labdir, capsys, content)
    assert code == 2, err
    assert out == ""
    problems = [line.removeprefix("error: ") for line in err.splitlines() if not line.startswith("hint: ")]
    assert problems and all(POSITION.match(line) for line in problems), err
    return err


# -- item 12: validate never crashes ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("machines:\n  a: &x [*x]\n", "machines.a[0]: an alias refers to the collection it is in"),
        ("machines:\n  a: &x {<<: *x}\n", "machines.a: an alias refers to the collection it is in"),
        ("machines:\n  web:\n    kind: ns\n    cpus: " + "9" * 5000 + "\n", "machines.web.cpus: expected"),
        ("machines:\n  web:\n    kind: ns\n    cpus: " + "9" * 100 + "\n", "got a very large number"),
        ("machines:\n  web:\n    kind: ns\n    memory: " + "9" * 400 + "G\n", "machines.web.memory:"),
        ("machines:\n  web:\n    kind: ns\n    memory: 1e400G\n", "machines.web.memory:"),
        ('name: "x\\0"\n' + NS, "name: 'x\\x00' is not a valid lab name"),
        ("name: demo\n" + NS.replace("web", '"web\\n"'), "'web\\n' is not a valid machine name"),
        ("machines:\n  web:\n    kind: ns\n    groups: [all]\n", "'all' is Ansible's own group"),
        ("machines:\n  web:\n    kind: ns\n    groups: [ungrouped]\n", "'ungrouped' is Ansible's own"),
        ("machines:\n  web:\n    kind: ns\n    groups: [web]\n", "group 'web' has the name of a machine"),
    ],
)
def test_hostile_values_are_problems_with_positions(
    labdir: Path, capsys: pytest.CaptureFixture[str], text: str, expected: str
) -> None:
    assert expected in refused(labdir, capsys, text)


def test_a_raw_nul_byte_and_bytes_that_are_not_utf8_have_a_position(
    labdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "labfile.yml:2:8: " in refused(labdir, capsys, b"name: a\nother: \x00\n")
    assert "labfile.yml:2:10: not valid YAML: the character U+0000" in refused(
        labdir, capsys, "name: a\nother: éé\x00\n".encode()
    )
    assert "not UTF-8: byte 0xff" in refused(labdir, capsys, b"name: a\n\xff\n")


def test_a_key_cannot_forge_an_ok_line_or_reach_the_terminal(
    labdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = 'machines:\n  "x\\nok: lab demo: 1 ns; 1 network\\x1b[2J\\u202e":\n    kind: ns\n'
    err = refused(labdir, capsys, text)
    assert not any(line.startswith("ok:") for line in err.splitlines())
    assert "\x1b" not in err and "\u202e" not in err
    assert "\\x1b[2J" in err and "\\u202e" in err


def test_more_values_than_a_lab_can_have_is_refused_before_composing(
    labdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flat = "machines:\n  a:\n    kind: ns\n    x: [" + ",".join(["1"] * 60_000) + "]\n"
    assert "the document holds more than 50000 values" in refused(labdir, capsys, flat)
    bomb = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}" if i > 1 else "*a"] * 9) + "]\n" for i in range(1, 12)
    )
    assert "expands to more than 50000 values through its aliases" in refused(labdir, capsys, bomb)
    assert "larger than 1024 KiB" in refused(labdir, capsys, "#" * (1024 * 1024 + 1))


def test_more_machines_than_the_subnet_holds_is_refused(
    labdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    machines = "".join(f"  m{i}: {{kind: ns, networks: [n]}}\n" for i in range(7))
    err = refused(labdir, capsys, f"networks:\n  n: {{cidr: 10.213.9.0/29}}\nmachines:\n{machines}")
    assert "labfile.yml:2:13: networks.n.cidr: 10.213.9.0/29 has no free address for m5, m6" in err
    assert "5 machines fit" in err


def test_a_name_too_long_for_a_container_is_refused_by_validate(
    labdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    long_name = "a" * 40
    err = refused(labdir, capsys, f"name: demo\nmachines:\n  {long_name}: {{kind: lxc, box: debian-12}}\n")
    assert f"machines.{long_name}: too long for an lxc machine of lab 'demo'" in err
    # The same name is fine for a VM, whose domain name has no such limit.
    code, _, err = validate_text(
        labdir, capsys, f"name: demo\nmachines:\n  {long_name}: {{kind: vm, box: b}}\n"
    )
    assert code == 0, err


def test_large_subnets_and_many_networks_validate(labdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    networks = "".join(f"  n{i}: {{cidr: 10.{i}.0.0/16}}\n" for i in range(1, 120))
    names = ", ".join(f"n{i}" for i in range(1, 120, 3))
    machines = "".join(f"  m{i}: {{kind: ns, networks: [{names}]}}\n" for i in range(150))
    code, out, err = validate_text(
        labdir, capsys, f"networks:\n  big: {{cidr: 172.16.0.0/12}}\n{networks}machines:\n{machines}"
    )
    assert code == 0, err
    assert out.startswith("ok: lab lab: 150 ns; 120 networks")


# -- item 7: lab subnets ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cidr", "what"),
    [
        ("127.0.0.0/24", "loopback"),
        ("127.10.0.0/16", "loopback"),
        ("169.254.1.0/24", "link-local"),
        ("224.0.0.0/24", "multicast"),
        ("0.0.0.0/8", "'this network'"),
        ("240.0.0.0/24", "reserved and broadcast"),
        ("255.255.255.0/24", "reserved and broadcast"),
    ],
)
def test_subnets_that_are_not_for_hosts_are_refused(
    labdir: Path, capsys: pytest.CaptureFixture[str], cidr: str, what: str
) -> None:
    err = refused(labdir, capsys, f"networks:\n  n: {{cidr: {cidr}}}\n{NS}")
    assert f"labfile.yml:2:13: networks.n.cidr: {cidr} overlaps {what}" in err


def test_a_subnet_holding_the_hosts_name_server_is_refused(
    labdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("# a comment\nsearch example\nnameserver 10.213.9.53\nnameserver ::1\n")
    monkeypatch.setattr(schema, "RESOLV_CONF", resolv)
    err = refused(labdir, capsys, f"networks:\n  n: {{cidr: 10.213.9.0/24}}\n{NS}")
    assert "holds 10.213.9.53, a name server of this host" in err
    code, _, err = validate_text(labdir, capsys, f"networks:\n  n: {{cidr: 10.213.10.0/24}}\n{NS}")
    assert code == 0, err


def test_a_public_subnet_is_valid_with_a_warning(labdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = validate_text(labdir, capsys, f"networks:\n  n: {{cidr: 8.8.8.0/24}}\n{NS}")
    assert code == 0 and out.startswith("ok:")
    assert "warning: network n (8.8.8.0/24) is a public range" in err
    code, _, err = validate_text(labdir, capsys, f"networks:\n  n: {{cidr: 192.168.77.0/24}}\n{NS}")
    assert code == 0 and "public range" not in err


# -- item 4: libvirt URIs from an allow-list ---------------------------------------------------------

ALLOWED = [
    "qemu:///system",
    "qemu:///session",
    "qemu+unix:///system",
    "test:///default",
    "qemu+ssh://lab-host/system",
    "qemu+ssh://root@192.0.2.7:2222/system?keyfile=/root/.ssh/lab&known_hosts=/root/kh",
    "qemu+ssh://[2001:db8::7]/system?no_verify=1",
    "qemu+libssh2://alice@lab-host/system",
]
REFUSED = [
    ("qemu+ssh://lab-host/system?command=/bin/sh", "the URI parameter 'command' is not allowed"),
    ("qemu+ssh://lab-host/system?netcat=/tmp/nc", "the URI parameter 'netcat' is not allowed"),
    ("qemu+ssh://lab-host/system?socket=/tmp/s", "the URI parameter 'socket' is not allowed"),
    ("qemu+ext:///system?command=/bin/sh", "the 'qemu+ext' transport is not supported"),
    ("qemu:///system?socket=/tmp/evil.sock", "takes no URI parameters here"),
    ("qemu:///embed?root=/tmp/r", "not the path '/embed'"),
    ("qemu+ssh://-oProxyCommand=sh/system", "expected a host name or address"),
    ("qemu+ssh://-lroot@lab-host/system", "is not a user name"),
    ("qemu+ssh://u:secret@lab-host/system", "a password in the URI is not supported"),
    ("qemu+ssh://lab-host/session", "a remote host is reached at /system"),
    ("qemu+ssh://lab-host/system?keyfile=key", "keyfile= takes an absolute path"),
    ("qemu+ssh://lab-host/system?keyfile=/k%0a-oProxyCommand", "holds control characters"),
    ("qemu+ssh://lab-host/system?no_verify=1&no_verify=0", "'no_verify' is given twice"),
    ("qemu+tcp://lab-host/system", "the 'qemu+tcp' transport is not supported"),
    ("xen:///system", "expected a QEMU URI"),
    ("test:///tmp/driver.xml", "expected a QEMU URI"),
    ("qemu:///system\nok", "spaces or control characters"),
]


@pytest.mark.parametrize("uri", ALLOWED)
def test_allowed_uris_validate(labdir: Path, capsys: pytest.CaptureFixture[str], uri: str) -> None:
    assert libvirt_uri.problem(uri) is None
    code, _, err = validate_text(labdir, capsys, f'libvirt_uri: "{uri}"\n{NS}')
    assert code == 0, err


@pytest.mark.parametrize(("uri", "reason"), REFUSED)
def test_uris_that_could_run_a_program_are_refused_everywhere(
    labdir: Path, capsys: pytest.CaptureFixture[str], uri: str, reason: str
) -> None:
    quoted = uri.replace("\n", "\\n")
    assert reason in refused(labdir, capsys, f'libvirt_uri: "{quoted}"\n{NS}')
    machine = f'machines:\n  v: {{kind: vm, box: b, libvirt_uri: "{quoted}"}}\n'
    err = refused(labdir, capsys, machine)
    assert "labfile.yml:2:38: machines.v.libvirt_uri: " in err and reason in err
    # A URI recorded in state.json (destroy connects to it) and a direct connect are refused too.
    record = {
        "format": 2,
        "lab_id": "lab-0123456789ab",
        "machines": {"v": {"kind": "vm", "libvirt_uri": uri}},
    }
    found = state_schema.problems(record)
    assert any(reason in problem or "control characters" in problem for problem in found), found
    from labctl.libvirt_util import connect

    with pytest.raises(HostError, match="refused"):
        connect(uri)


def test_a_refused_uri_never_reaches_libvirt(monkeypatch: pytest.MonkeyPatch) -> None:
    import libvirt

    opened: list[str] = []
    monkeypatch.setattr(libvirt, "open", lambda uri: opened.append(uri))
    from labctl.libvirt_util import connect

    with pytest.raises(HostError):
        connect("qemu+ssh://lab-host/system?command=/bin/touch%20/tmp/pwned")
    assert opened == []
