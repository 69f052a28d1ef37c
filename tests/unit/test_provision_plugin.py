"""The labctl_runc connection plugin under real Ansible, with a stand-in runtime: a script that
takes `--root ROOT exec ID CMD...`, checks ROOT and ID, and runs CMD here. Commands, file uploads
(copy) and downloads (fetch) all go through it, with and without pipelining."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from labctl.provision.ansible import environment

BIN = Path(sys.executable).parent
FAKE_RUNC = """\
#!/bin/sh
# a stand-in for `runc --root ROOT exec ID CMD...`: checks the arguments, runs CMD on this host
[ "$1" = --root ] && [ "$2" = "{root}" ] && [ "$3" = exec ] && [ "$4" = "{container}" ] || {{
  echo "unexpected runtime arguments: $*" >&2; exit 99; }}
echo "$4" >> "{log}"
shift 4
exec "$@"
"""

PLAYBOOK = """\
- hosts: all
  gather_facts: false
  tasks:
    - ansible.builtin.command: echo from-inside
      register: said
    - ansible.builtin.copy:
        dest: "{{ work }}/copied.txt"
        content: "copied by {{ inventory_hostname }}\\n"
        mode: "0640"
    - ansible.builtin.fetch:
        src: "{{ work }}/copied.txt"
        dest: "{{ work }}/fetched/"
        flat: true
    - ansible.builtin.assert:
        that: said.stdout == "from-inside"
"""


@pytest.mark.parametrize("pipelining", [True, False])
def test_commands_uploads_and_downloads_go_through_the_runtime(tmp_path: Path, pipelining: bool) -> None:
    root, container, log = tmp_path / "runc-root", "labctl-lab-abc123-probe", tmp_path / "runtime.log"
    runtime = tmp_path / "fake-runc"
    runtime.write_text(FAKE_RUNC.format(root=root, container=container, log=log))
    runtime.chmod(0o755)
    host = {
        "ansible_connection": "labctl_runc",
        "ansible_pipelining": pipelining,
        "ansible_python_interpreter": sys.executable,
        "labctl_runtime": str(runtime),
        "labctl_runtime_root": str(root),
        "labctl_container": container,
        "work": str(tmp_path),
    }
    (tmp_path / "inventory.yml").write_text(json.dumps({"all": {"hosts": {"probe": host}}}))
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(tmp_path / "inventory.yml"), str(tmp_path / "play.yml")],
        capture_output=True,
        text=True,
        env={**os.environ, **environment()},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "copied.txt").read_text() == "copied by probe\n"
    assert oct((tmp_path / "copied.txt").stat().st_mode & 0o777) == "0o640"
    assert (tmp_path / "fetched" / "copied.txt").read_text() == "copied by probe\n"
    assert len(log.read_text().splitlines()) >= 4  # every command went through the runtime
