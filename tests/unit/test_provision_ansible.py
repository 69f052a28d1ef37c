"""run_playbook, the one caller of ansible_runner, against `localhost` with Ansible's local
connection: lines stream to the handler as they come, extra vars arrive, the exit code is Ansible's."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from labctl.provision.ansible import environment, run_playbook
from labctl.provision.inventory import plugin_dir

PLAYBOOK = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: write the extra var into a file
      ansible.builtin.copy:
        dest: "{{ target }}"
        content: "{{ word }}\\n"
    - name: fail when asked
      ansible.builtin.fail:
        msg: "asked to fail"
      when: fail | default(false) | bool
"""


def setup(tmp_path: Path) -> tuple[Path, Path]:
    inventory = tmp_path / "inventory.yml"
    # The controller's own interpreter: whatever `python3` on PATH is does not matter then.
    host = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    inventory.write_text(json.dumps({"all": {"hosts": {"box": host}}}))
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAYBOOK)
    return inventory, playbook


def test_a_playbook_runs_with_extra_vars_and_streams_its_lines(tmp_path: Path) -> None:
    inventory, playbook = setup(tmp_path)
    lines: list[str] = []
    target = tmp_path / "out.txt"
    code = run_playbook(
        tmp_path / "runner", inventory, playbook, "box", {"target": str(target), "word": "hi"}, lines.append
    )
    assert code == 0
    assert target.read_text() == "hi\n"
    assert any(line.startswith("TASK [write the extra var into a file]") for line in lines)
    assert any("box" in line and "ok=" in line for line in lines)


def test_a_failing_task_gives_a_non_zero_code_and_its_message(tmp_path: Path) -> None:
    inventory, playbook = setup(tmp_path)
    lines: list[str] = []
    extra = {"target": str(tmp_path / "x"), "word": "x", "fail": True}
    code = run_playbook(tmp_path / "runner", inventory, playbook, "box", extra, lines.append)
    assert code == 2
    assert any("asked to fail" in line for line in lines)


def test_the_environment_adds_labctls_plugin_to_the_users(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANSIBLE_CONNECTION_PLUGINS", "/opt/mine")
    env = environment()
    assert env["ANSIBLE_CONNECTION_PLUGINS"] == f"{plugin_dir()}:/opt/mine"
    assert env["ANSIBLE_HOST_KEY_CHECKING"] == "True"
