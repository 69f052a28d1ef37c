"""The lab as an Ansible inventory and an OpenSSH config, checked by Ansible and OpenSSH themselves
(`ansible-inventory --list`, `ssh -G`), without any machine running."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests_support import CliResult

from labctl.drivers import LabContext
from labctl.lab import LabRunner
from labctl.labfile import load_lab
from labctl.provision import inventory, sshconfig

BIN = Path(sys.executable).parent
LAB = """\
name: inv
defaults: {box: debian-12, memory: 256M}
networks:
  lan: {cidr: 10.250.31.0/24, mode: isolated}
machines:
  web: {kind: vm, networks: [{name: lan, ip: 10.250.31.10}], groups: [frontend, linux]}
  cache: {kind: lxc, networks: [{name: lan, ip: 10.250.31.20}], groups: [linux]}
  probe: {kind: ns, namespaces: [pid, net, mnt], networks: [{name: lan, ip: 10.250.31.30}]}
"""


@pytest.fixture
def runner(write_labfile: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> LabRunner:
    monkeypatch.setenv("LABCTL_HOME", str(tmp_path / "home"))
    return LabRunner(load_lab(str(write_labfile(LAB))))


def test_every_machine_is_a_host_grouped_by_kind_and_declared_groups(runner: LabRunner) -> None:
    built = inventory.build(runner.context, runner.driver)["all"]
    assert list(built["hosts"]) == ["web", "cache", "probe"]
    groups = {name: list(body["hosts"]) for name, body in built["children"].items()}
    assert groups == {
        "vm": ["web"],
        "frontend": ["web"],
        "linux": ["web", "cache"],
        "lxc": ["cache"],
        "ns": ["probe"],
    }


def test_ssh_hosts_use_the_lab_key_and_known_hosts_with_strict_checking(runner: LabRunner) -> None:
    web = inventory.build(runner.context, runner.driver)["all"]["hosts"]["web"]
    state = runner.context.state.dir
    assert web["ansible_host"] == "10.250.31.10" and web["ansible_user"] == "root"
    assert web["ansible_ssh_private_key_file"] == str(state / "id_ed25519")
    args = shlex.split(web["ansible_ssh_common_args"])
    assert f"UserKnownHostsFile={state / 'known_hosts'}" in args
    assert "StrictHostKeyChecking=yes" in args and "HostKeyAlias=10.250.31.10" in args
    assert "ansible_connection" not in web


def test_ns_hosts_use_the_runc_plugin_with_the_drivers_root_and_container(runner: LabRunner) -> None:
    probe = inventory.build(runner.context, runner.driver)["all"]["hosts"]["probe"]
    assert probe["ansible_connection"] == "labctl_runc"
    assert probe["labctl_runtime_root"] == str(runner.context.data_dir / "runc")
    assert probe["labctl_container"] == f"labctl-{runner.lab.id}-probe"
    assert probe["labctl_address"] == "10.250.31.30"
    assert (inventory.plugin_dir() / "labctl_runc.py").is_file()


def ansible_inventory(path: Path) -> dict[str, Any]:
    env = {**os.environ, "ANSIBLE_CONNECTION_PLUGINS": str(inventory.plugin_dir())}
    proc = subprocess.run(
        [str(BIN / "ansible-inventory"), "-i", str(path), "--list"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    parsed: dict[str, Any] = json.loads(proc.stdout)
    return parsed


@pytest.mark.parametrize("form", ["yaml", "ini"])
def test_ansible_reads_the_inventory_as_written(runner: LabRunner, tmp_path: Path, form: str) -> None:
    built = inventory.build(runner.context, runner.driver)
    path = tmp_path / f"inventory.{'yml' if form == 'yaml' else 'ini'}"
    path.write_text(inventory.to_yaml(built) if form == "yaml" else inventory.to_ini(built))
    listed = ansible_inventory(path)
    hostvars = listed["_meta"]["hostvars"]
    for name, expected in built["all"]["hosts"].items():
        for key, value in expected.items():
            assert hostvars[name][key] == value, (name, key)
    assert sorted(listed["linux"]["hosts"]) == ["cache", "web"]
    assert listed["ns"]["hosts"] == ["probe"]


def test_ssh_config_is_read_by_openssh_as_intended(runner: LabRunner, tmp_path: Path) -> None:
    config = tmp_path / "ssh_config"
    config.write_text(sshconfig.render(runner.context, runner.driver))
    proc = subprocess.run(["ssh", "-G", "-F", str(config), "web"], capture_output=True, text=True, check=True)
    options = dict(line.split(" ", 1) for line in proc.stdout.splitlines())
    state = runner.context.state.dir
    assert options["hostname"] == "10.250.31.10"
    assert options["user"] == "root"
    assert options["identityfile"] == str(state / "id_ed25519")
    assert options["identitiesonly"] == "yes"
    assert options["userknownhostsfile"] == str(state / "known_hosts")
    assert options["stricthostkeychecking"] == "true"
    assert options["hostkeyalias"] == "10.250.31.10"
    text = config.read_text()
    assert "Host cache" in text
    assert "Host probe" not in text and "# probe (ns) runs no sshd: labctl ssh probe" in text


def test_ssh_config_quotes_paths_with_spaces_and_refuses_quotes() -> None:
    assert sshconfig.quote("/a b/key") == '"/a b/key"'
    assert sshconfig.quote("/ab/key") == "/ab/key"
    with pytest.raises(Exception, match="cannot write"):
        sshconfig.quote('/a"b')


def test_cli_inventory_ssh_config_and_env(
    runner: LabRunner, cli: Callable[..., CliResult], labdir: Path, tmp_path: Path
) -> None:
    env = {"LABCTL_HOME": str(tmp_path / "home")}
    printed = cli("inventory", cwd=labdir, env=env)
    assert printed.returncode == 0, printed.stderr
    assert 'eval "$(labctl inventory --env)"' in printed.stdout
    assert "probe" in yaml.safe_load(printed.stdout)["all"]["hosts"]
    written = cli("inventory", "--format", "ini", "--write", str(tmp_path / "inv.ini"), cwd=labdir, env=env)
    assert written.returncode == 0 and written.stdout == ""
    assert (tmp_path / "inv.ini").stat().st_mode & 0o777 == 0o600
    assert "[ns]\nprobe" in (tmp_path / "inv.ini").read_text()
    exported = cli("inventory", "--env", cwd=labdir)
    assert exported.stdout == f"export ANSIBLE_CONNECTION_PLUGINS={inventory.plugin_dir()}\n"
    config = cli("ssh-config", cwd=labdir, env=env)
    assert config.returncode == 0 and "Host web\n  HostName 10.250.31.10\n" in config.stdout
    assert "Host cache\n  HostName 10.250.31.20\n" in config.stdout


def test_known_hosts_alias_matches_the_recorded_line() -> None:
    from labctl.keys import known_hosts_line

    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample"
    for port in (22, 2222):
        alias = inventory.host_key_alias("10.0.0.5", port)
        assert known_hosts_line("10.0.0.5", port, key).split()[0] == alias


def test_inventory_for_context_without_running_anything(runner: LabRunner) -> None:
    # Building the inventory reads the model and the plan only: no machine needs to exist.
    context = LabContext(runner.lab)
    assert not context.state.exists()
    assert inventory.build(context, runner.driver)["all"]["vars"]["labctl_lab"] == "inv"
