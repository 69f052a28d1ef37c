"""The labfile rules, written from the user's side: a labfile in, `labctl validate` output out."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from labctl.cli import main

GOOD = """\
name: demo
defaults: {box: debian-12, memory: 512M}
networks:
  lan: {cidr: 10.213.7.0/24, mode: isolated}
machines:
  web:
    kind: vm
    cpus: 2
    memory: 1G
    disk: 8G
    devices: paravirtual
    accel: auto
    networks: [lan]
  cache: {kind: lxc, memory: 256M, networks: [lan]}
  probe:
    kind: ns
    namespaces: [pid, net, uts, ipc, mnt]
    command: [sleep, infinity]
    networks: [lan]
"""


def validate(capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, list[str], str]:
    code = main(["validate", *extra])
    captured = capsys.readouterr()
    return code, captured.err.splitlines(), captured.out


def errors_for(write: Callable[[str], Path], capsys: pytest.CaptureFixture[str], text: str) -> list[str]:
    write(text)
    code, err, _ = validate(capsys)
    assert code == 2, err
    return [line.removeprefix("error: ") for line in err if line.startswith(("error: ", "labfile.yml:"))]


def test_valid_labfile_prints_one_ok_line(
    write_labfile: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    write_labfile(GOOD)
    code, _, out = validate(capsys)
    assert code == 0
    assert out.strip() == "ok: lab demo: 1 vm, 1 lxc, 1 ns; 1 network"


def test_example_labfile_validates(capsys: pytest.CaptureFixture[str]) -> None:
    example = Path(__file__).resolve().parents[2] / "labfile.example.yml"
    assert main(["validate", "-f", str(example)]) == 0
    assert capsys.readouterr().out.startswith("ok: lab example: 2 vm, 1 lxc, 1 ns")


def test_every_problem_is_reported_at_once_with_positions(
    write_labfile: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    lines = errors_for(
        write_labfile,
        capsys,
        """\
        name: demo
        machines:
          web:
            kind: vm
            box: debian-12
            memory: lots
            cpus: 0
          db:
            kind: lxc
            box: debian-12
            memroy: 1G
        """,
    )
    assert "labfile.yml:6:13: machines.web.memory: expected a size like 512M or 2G, got 'lots'" in lines
    assert "labfile.yml:7:11: machines.web.cpus: must be from 1 to 256, got 0" in lines
    assert "labfile.yml:11:5: machines.db.memroy: unknown key; did you mean 'memory'?" in lines


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "machines: {web: {kind: vm, box: b, disk: 8G, namespaces: [pid, mnt]}}",
            "machines.web.namespaces: applies only to ns machines, not vm",
        ),
        ("machines: {p: {kind: ns, disk: 8G}}", "machines.p.disk: applies only to vm machines, not ns"),
        (
            "machines: {c: {kind: lxc, box: b, devices: emulated}}",
            "machines.c.devices: applies only to vm machines, not lxc",
        ),
        (
            "machines: {p: {kind: ns, privileged: true}}",
            "machines.p.privileged: applies only to lxc machines, not ns",
        ),
        (
            "machines: {c: {kind: lxc, box: b, privileged: 'yes'}}",
            "machines.c.privileged: expected true or false, got text 'yes'",
        ),
        (
            "machines: {web: {kind: vm, box: b, devices: virtio}}",
            "machines.web.devices: expected one of paravirtual | emulated, got 'virtio'",
        ),
        (
            "machines: {web: {kind: vm, box: b, accel: hvf}}",
            "machines.web.accel: expected one of auto | kvm | tcg, got 'hvf'",
        ),
        ("machines: {web: {kind: docker}}", "machines.web.kind: expected one of vm | lxc | ns, got 'docker'"),
        ("machines: {web: {box: b}}", "machines.web: missing key 'kind': one of vm | lxc | ns"),
        ("machines: {web: {kind: vm}}", "machines.web: missing key 'box'"),
        ("machines: {Web_1: {kind: ns}}", "machines.Web_1: 'Web_1' is not a valid machine name"),
        ("machines: {-web: {kind: ns}}", "is not a valid machine name"),
        ("name: 'a;rm -rf /'\nmachines: {p: {kind: ns}}", "name: 'a;rm -rf /' is not a valid lab name"),
        (
            "machines: {p: {kind: ns, memory: 512}}",
            "machines.p.memory: expected a size like 512M or 2G, got the bare number 512 (add a unit: 512M?)",
        ),
        (
            "machines: {web: {kind: vm, box: b, memory: 64M}}",
            "machines.web.memory: must be from 128M to 1T for a vm machine",
        ),
        ("machines: {web: {kind: vm, box: b, disk: 100M}}", "machines.web.disk: must be from 1G to 2T"),
        (
            "machines: {p: {kind: ns, cpus: '2'}}",
            "machines.p.cpus: expected a whole number from 1 to 256, got text '2'",
        ),
        (
            "machines: {p: {kind: ns, cpus: on}}",
            "machines.p.cpus: expected a whole number from 1 to 256, got a boolean",
        ),
        (
            "machines: {p: {kind: ns, namespaces: [pid, net, foo, mnt]}}",
            "expected one of pid | net | uts | ipc | mnt | user | cgroup, got 'foo'",
        ),
        ("machines: {p: {kind: ns, namespaces: [pid, net]}}", "machines.p.namespaces: must include mnt"),
        ("machines: {p: {kind: ns, namespaces: [pid, pid, mnt]}}", "namespace 'pid' is listed twice"),
        (
            "machines: {p: {kind: ns, namespaces: [mnt, uts], networks: [lab]}}",
            "machines.p.networks: a machine without the net namespace shares the host's network",
        ),
        ("machines: {p: {kind: ns, command: []}}", "machines.p.command: the command is empty"),
        (
            "machines: {p: {kind: ns, groups: [Web-Servers]}}",
            "machines.p.groups: group names use lowercase letters",
        ),
        ("machines: []", "machines: expected a mapping of machine names to settings, got a list"),
        ("machines: {}", "machines: expected a mapping of machine names to settings, got a mapping"),
        ("name: demo", "missing key 'machines'"),
        ("machines: {p: {kind: ns}}\nextra: 1", "extra: unknown key"),
        (
            "defaults: {memroy: 1G}\nmachines: {p: {kind: ns}}",
            "defaults.memroy: unknown key; did you mean 'memory'?",
        ),
        (
            "libvirt_uri: nonsense\nmachines: {p: {kind: ns}}",
            "libvirt_uri: expected a QEMU URI such as qemu:///system",
        ),
    ],
)
def test_machine_rules(
    write_labfile: Callable[[str], Path], capsys: pytest.CaptureFixture[str], text: str, expected: str
) -> None:
    lines = errors_for(write_labfile, capsys, text + "\n")
    assert any(expected in line for line in lines), lines


@pytest.mark.parametrize(
    ("networks", "machine_nets", "expected"),
    [
        (
            "lan: {cidr: 10.1.0.0/24}",
            "[wan]",
            "machines.m.networks[0]: network 'wan' is not declared (declared: lan)",
        ),
        ("lan: {cidr: 10.1.0.0/24}", "[lam]", "did you mean 'lan'?"),
        (
            "lan: {cidr: 10.1.0.1/24}",
            "[lan]",
            "networks.lan.cidr: '10.1.0.1/24' has host bits set; did you mean 10.1.0.0/24?",
        ),
        ("lan: {cidr: 10.1.0.0/31}", "[lan]", "networks.lan.cidr: prefix /31 is out of range: use /8 to /29"),
        ("lan: {cidr: 10.1.0.0}", "[lan]", "has no prefix length"),
        ("lan: {cidr: fe80::/64}", "[lan]", "expected an IPv4 network like 10.213.7.0/24"),
        ("lan: {mode: nat}", "[lan]", "networks.lan: missing key 'cidr'"),
        (
            "lan: {cidr: 10.1.0.0/24, mode: bridged}",
            "[lan]",
            "networks.lan.mode: expected one of isolated | nat, got 'bridged'",
        ),
        (
            "lan: {cidr: 10.1.0.0/16}\nlan2: {cidr: 10.1.2.0/24}",
            "[lan]",
            "networks.lan2.cidr: 10.1.2.0/24 overlaps network 'lan' (10.1.0.0/16)",
        ),
        (
            "lan: {cidr: 10.1.0.0/24}",
            "[{name: lan, ip: 10.2.0.5}]",
            "machines.m.networks[0].ip: 10.2.0.5 is outside network 'lan' (10.1.0.0/24)",
        ),
        (
            "lan: {cidr: 10.1.0.0/24}",
            "[{name: lan, ip: 10.1.0.0}]",
            "10.1.0.0 is the network address of 10.1.0.0/24",
        ),
        ("lan: {cidr: 10.1.0.0/24}", "[{name: lan, ip: 10.1.0.255}]", "10.1.0.255 is the broadcast address"),
        ("lan: {cidr: 10.1.0.0/24}", "[{name: lan, ip: 10.1.0.1}]", "10.1.0.1 is the gateway of 10.1.0.0/24"),
        (
            "lan: {cidr: 10.1.0.0/24}",
            "[{name: lan, ip: 10.1.0.999}]",
            "expected an IPv4 address like 10.213.7.10, got '10.1.0.999'",
        ),
        ("lan: {cidr: 10.1.0.0/24}", "[lan, lan]", "network 'lan' is listed twice"),
        ("lan: {cidr: 10.1.0.0/24}", "[{ip: 10.1.0.5}]", "missing key 'name'"),
        ("Lan: {cidr: 10.1.0.0/24}", "[]", "networks.Lan: 'Lan' is not a valid network name"),
        ("a-very-long-network-name: {cidr: 10.1.0.0/24}", "[]", "is not a valid network name: use 1-15"),
    ],
)
def test_network_rules(
    write_labfile: Callable[[str], Path],
    capsys: pytest.CaptureFixture[str],
    networks: str,
    machine_nets: str,
    expected: str,
) -> None:
    text = "networks:\n" + "".join(f"  {line}\n" for line in networks.splitlines())
    text += f"machines:\n  m: {{kind: lxc, box: b, networks: {machine_nets}}}\n"
    lines = errors_for(write_labfile, capsys, text)
    assert any(expected in line for line in lines), lines


def test_static_ip_used_twice(
    write_labfile: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    lines = errors_for(
        write_labfile,
        capsys,
        """\
        networks: {lan: {cidr: 10.1.0.0/24}}
        defaults: {box: b}
        machines:
          a: {kind: lxc, networks: [{name: lan, ip: 10.1.0.5}]}
          b: {kind: lxc, networks: [{name: lan, ip: 10.1.0.5}]}
        """,
    )
    assert lines == ["labfile.yml:5:45: machines.b.networks[0].ip: 10.1.0.5 is already given to machine 'a'"]


def test_provision_paths_are_checked_relative_to_the_labfile(
    write_labfile: Callable[[str], Path], labdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (labdir / "site").mkdir()
    (labdir / "setup.sh").write_text("true\n")
    (labdir.parent / "secret").write_text("x")
    lines = errors_for(
        write_labfile,
        capsys,
        """\
        machines:
          p:
            kind: ns
            provision:
              - shell: {script: setup.sh}
              - file: {src: site/, dest: /srv}
              - shell: {script: missing.sh}
              - file: {src: ../secret, dest: /tmp/x}
              - file: {src: site, dest: relative/path}
              - file: {src: site, dest: /srv, mode: rwx}
              - ansible: playbooks/nope.yml
              - shell: ""
              - copy: {src: a}
              - {shell: a, file: b}
        """,
    )
    joined = "\n".join(lines)
    assert "provision[0]" not in joined and "provision[1]" not in joined
    assert "machines.p.provision[2].shell.script: 'missing.sh' does not exist" in joined
    assert "machines.p.provision[3].file.src: '../secret' is outside the lab's directory" in joined
    assert (
        "machines.p.provision[4].file.dest: expected an absolute path inside the machine, got 'relative/path'"
        in joined
    )
    assert "machines.p.provision[5].file.mode: expected a file mode like '0644'" in joined
    assert "machines.p.provision[6].ansible.playbook: 'playbooks/nope.yml' does not exist" in joined
    assert "machines.p.provision[7].shell: the shell step is empty" in joined
    assert "machines.p.provision[8].copy: unknown key" in joined
    assert "machines.p.provision[9]: each step is a mapping with one key: shell, file or ansible" in joined


def test_defaults_apply_and_machine_keys_override(write_labfile: Callable[[str], Path]) -> None:
    from labctl.labfile import load_lab

    write_labfile(
        """\
        defaults: {box: debian-12, memory: 1G, disk: 16G, cpus: 2}
        machines:
          web: {kind: vm, memory: 2G}
          probe: {kind: ns}
        """
    )
    lab = load_lab(None)
    web, probe = lab.machines
    assert (web.memory, web.disk, web.cpus, web.box) == (2 * 1024**3, 16 * 1024**3, 2, "debian-12")
    assert probe.disk is None  # disk in defaults applies to VMs only, silently
    assert probe.memory == 1024**3


def test_lab_without_networks_gets_one_isolated_network(
    write_labfile: Callable[[str], Path], labdir: Path
) -> None:
    from labctl.labfile import load_lab

    write_labfile("machines: {c: {kind: lxc, box: b}, p: {kind: ns, namespaces: [mnt, pid]}}\n")
    lab = load_lab(None)
    assert [n.name for n in lab.networks] == ["lab"]
    assert lab.networks[0].mode.value == "isolated"
    assert lab.machine("c").networks[0].network == "lab"
    assert lab.machine("p").networks == ()  # no net namespace: the host's network
    assert lab.name == "lab"  # the directory's name
    assert lab.id.startswith("lab-")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("512M", 512 * 1024**2),
        ("1G", 1024**3),
        ("1536MiB", 1536 * 1024**2),
        ("2GB", 2 * 10**9),
        ("1.5G", 1536 * 1024**2),
    ],
)
def test_sizes(value: str, expected: int) -> None:
    from labctl.labfile.values import size

    assert size(value) == expected


def test_output_as_json(write_labfile: Callable[[str], Path], capsys: pytest.CaptureFixture[str]) -> None:
    import json

    write_labfile("machines: {p: {kind: ns, cpus: lots}}\n")
    code = main(["validate", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 2
    assert data["valid"] is False
    assert data["problems"][0]["path"] == "machines.p.cpus"
    assert (data["problems"][0]["line"], data["problems"][0]["column"]) == (1, 32)


def test_privileged_lxc_machines_are_valid_but_reported(
    write_labfile: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """privileged: true is a choice validate lets through (exit 0) and names, every time."""
    write_labfile(
        "defaults: {box: debian-12, privileged: true}\n"
        "machines:\n"
        "  old: {kind: lxc}\n"
        "  new: {kind: lxc, privileged: false}\n"
        "  legacy: {kind: lxc}\n"
        "  probe: {kind: ns}\n"
    )
    code, err, out = validate(capsys)
    assert code == 0
    assert out.startswith("ok: lab ")
    warnings = [line for line in err if "privileged" in line]
    assert len(warnings) == 1, err
    assert "old, legacy (privileged: true)" in warnings[0] and "new" not in warnings[0].split("(")[0]
    assert "host's root" in warnings[0]
    import json

    assert main(["validate", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["privileged"] == ["old", "legacy"]
    write_labfile("machines: {c: {kind: lxc, box: debian-12}}\n")
    code, err, _ = validate(capsys)
    assert code == 0 and not [line for line in err if "privileged" in line]
