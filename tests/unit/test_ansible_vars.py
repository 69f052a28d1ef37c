"""extra_vars cannot move a playbook onto the host: no connection or become variables, no
labctl_* inventory variables, no Jinja anywhere in them; refused by `validate` with the position,
and again by run_playbook before Ansible starts.

The attacks run the real ansible-runner against a machine that does not exist (TEST-NET-1): what
they would do on the host is create a marker file under tmp_path.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from labctl import ansible_vars
from labctl.cli import main
from labctl.errors import ProvisionError
from labctl.provision.ansible import run_playbook

PLAYBOOK = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: greet
      ansible.builtin.debug:
        msg: "{{ word | default('hi') }} {{ cfg | default('') }}"
    - name: write a page
      ansible.builtin.copy:
        dest: "{{ target }}"
        content: "page\\n"
"""


def attacks(marker: Path) -> dict[str, dict[str, Any]]:
    return {
        "ansible_connection local": {
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            "target": str(marker),
        },
        "jinja lookup in a value": {
            "word": f"{{{{ lookup('pipe', 'touch {marker}') }}}}",
            "target": "/srv/page",
        },
        "jinja nested deep": {
            "target": "/srv/page",
            "cfg": {"a": [1, {"b": f"{{% set x = lookup('pipe', 'touch {marker}') %}}"}]},
        },
    }


@pytest.mark.parametrize("case", list(attacks(Path("/x"))))
def test_run_playbook_refuses_extra_vars_that_would_run_on_the_host(tmp_path: Path, case: str) -> None:
    marker = tmp_path / "ran-on-the-host"
    inventory = tmp_path / "inventory.yml"
    unreachable = {"ansible_host": "192.0.2.1", "ansible_connection": "ssh", "ansible_ssh_timeout": 1}
    inventory.write_text(json.dumps({"all": {"hosts": {"web": unreachable}}}))
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAYBOOK)
    with pytest.raises(ProvisionError, match=r"refusing to run play\.yml: extra_vars\."):
        run_playbook(tmp_path / "runner", inventory, playbook, "web", attacks(marker)[case], lambda _: None)
    assert not marker.exists()
    assert not (tmp_path / "runner").exists()  # refused before ansible-runner was even set up


@pytest.mark.parametrize(
    "name",
    [
        "ansible_connection", "ansible_host", "ansible_port", "ansible_user", "ansible_ssh_common_args",
        "ansible_ssh_executable", "ansible_become", "ansible_become_exe", "ansible_become_method",
        "ansible_python_interpreter", "ansible_shell_executable", "ansible_psrp_proxy",
        "ansible_paramiko_proxy_command", "ANSIBLE_CONNECTION", "labctl_runtime", "labctl_runtime_root",
        "labctl_container", "hostvars", "groups", "inventory_hostname", "item", "omit",
        "not-an-identifier", "1st",
    ],
)  # fmt: skip
def test_reserved_and_malformed_names_are_refused(name: str) -> None:
    found = list(ansible_vars.problems({name: "x"}))
    assert [(path, key) for path, _message, key in found] == [((name,), True)]


def test_plain_data_passes() -> None:
    extra = {
        "db_name": "shop",
        "lab_users": [{"name": "alice", "key": "ssh-ed25519 AAAA alice@laptop", "sudo": True}],
        "port": 8080,
        "ratio": 0.5,
        "nothing": None,
        "braces": "{ not a template } and {a: 1} and 100%",
    }
    assert list(ansible_vars.problems(extra)) == []
    assert ansible_vars.check(extra) is None


def test_a_recursive_value_is_walked_once() -> None:
    loop: list[Any] = ["{{ x }}"]
    loop.append(loop)
    assert [path for path, _m, _k in ansible_vars.problems({"v": loop})] == [("v", 0)]


def test_validate_reports_every_problem_with_its_position(
    write_labfile: Callable[[str], Path], labdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (labdir / "play.yml").write_text(PLAYBOOK)
    write_labfile(
        """\
name: vars
machines:
  web:
    kind: ns
    provision:
      - ansible:
          playbook: webserver
          extra_vars:
            ansible_connection: local
            web_title: "{{ lookup('pipe', 'id') }}"
            labctl_runtime: /bin/sh
      - ansible:
          playbook: play.yml
          extra_vars:
            deep: {list: [ok, "{% raw %}x{% endraw %}"], "{{ k }}": 1}
            2: numbered
"""
    )
    assert main(["validate"]) == 2
    err = capsys.readouterr().err
    expected = [
        "labfile.yml:9:13: machines.web.provision[0].ansible.extra_vars.ansible_connection: 'ansible_connection'",
        "labfile.yml:10:24: machines.web.provision[0].ansible.extra_vars.web_title: text with {{, {% or {#",
        "labfile.yml:11:13: machines.web.provision[0].ansible.extra_vars.labctl_runtime: 'labctl_runtime'",
        "labfile.yml:15:31: machines.web.provision[1].ansible.extra_vars.deep.list[1]: text with",
        "labfile.yml:15:58: machines.web.provision[1].ansible.extra_vars.deep.{{ k }}: '{{ k }}' cannot be a key",
        "labfile.yml:16:13: machines.web.provision[1].ansible.extra_vars.2: '2' is not a variable name",
    ]
    for line in expected:
        assert line in err, err
