"""Provisioning and access on every kind, through the real CLI, on ONE shared lab (VMs under TCG
are slow): a VM, an LXC container and two namespace containers (one whose provisioning fails) on
an isolated network with a subnet this host does not route.

Covered: shell (inline and script), file (tree and single file with mode) and ansible (a lab
playbook and a shipped one) steps on vm, lxc and ns; `up` reporting a failing step and carrying
on; `labctl provision` again; `labctl exec` passing stdin, stdout, stderr, exit code and -t;
`labctl ssh`; OpenSSH `ssh -F`/`scp -F` over `labctl ssh-config`; `ansible -i` ping over
`labctl inventory`; a changed host key refused with the ssh-keygen -R line.
"""

from __future__ import annotations

import json
import os
import random
import shlex
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests_support import CliResult, free_subnet

from labctl.box import Box

pytestmark = pytest.mark.integration

LABCTL = [sys.executable, "-m", "labctl"]
BIN = Path(sys.executable).parent
WORKING = ["vm1", "ct1", "ns1"]  # one machine of each kind, all provisioned successfully
SSH_MACHINES = ["vm1", "ct1"]

PLAYBOOK = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: a file made by Ansible, from extra vars and the inventory
      ansible.builtin.copy:
        dest: /root/ansible.txt
        content: "{{ greeting }} from {{ inventory_hostname }} ({{ labctl_kind }})\\n"
        mode: "0640"
"""

SCRIPT = """\
#!/bin/sh
printf '%s\\n' "$@" > /root/script-args.txt
echo "script ran with $# args"
"""

STEPS = """\
    - shell: |
        echo "step one on $(hostname)"
        echo "to stderr" >&2
        echo run >> /root/runs.txt
    - shell: {script: setup.sh, args: [first, "second word"]}
    - file: {src: site, dest: /srv/site}
    - file: {src: secret.txt, dest: /etc/labctl-test/, mode: "0600"}
    - ansible: {playbook: play.yml, extra_vars: {greeting: hello}}
    - ansible: {playbook: users, extra_vars: {lab_users: [{name: student}]}}
"""


def labfile(name: str, cidr: str) -> str:
    machines = textwrap.indent(
        textwrap.dedent(
            """\
            vm1:
              kind: vm
              memory: 768M
              networks: [lan]
              groups: [linux]
              provision: &steps
            """
        )
        + STEPS
        + textwrap.dedent(
            """\
            ct1:
              kind: lxc
              networks: [lan]
              groups: [linux]
              provision: *steps
            ns1:
              kind: ns
              namespaces: [pid, net, uts, ipc, mnt]
              networks: [lan]
              provision: *steps
            nsfail:
              kind: ns
              memory: 64M
              namespaces: [pid, net, uts, ipc, mnt]
              networks: [lan]
              provision:
                - shell: echo fine
                - shell: |
                    echo "about to fail"
                    exit 3
                - shell: touch /root/never
            """
        ),
        "  ",
    )
    return (
        f"name: {name}\n"
        "defaults: {box: debian-12, cpus: 1, memory: 256M}\n"
        f"networks:\n  lan: {{cidr: {cidr}, mode: isolated}}\n"
        f"machines:\n{machines}"
    )


@dataclass
class Lab:
    root: Path
    up: CliResult

    def cli(self, *args: str, input: str | None = None, timeout: float = 900) -> CliResult:
        proc = subprocess.run(
            [*LABCTL, *args],
            cwd=self.root,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "NO_COLOR": "1"},
        )
        return CliResult(proc.returncode, proc.stdout, proc.stderr)

    def sh(self, machine: str, script: str) -> str:
        result = self.cli("exec", machine, "--", "sh", "-c", script)
        assert result.returncode == 0, result.stderr
        return result.stdout


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, debian_box: Box) -> Iterator[Lab]:
    assert debian_box.rootfs is not None and debian_box.disk is not None  # for vm, lxc and ns
    root = tmp_path_factory.mktemp("provision") / "lab"
    (root / "site" / "img").mkdir(parents=True)
    (root / "site" / "index.html").write_text("<h1>lab</h1>\n")
    (root / "site" / "img" / "logo.txt").write_text("logo\n")
    (root / "secret.txt").write_text("s3cret\n")
    (root / "setup.sh").write_text(SCRIPT)
    (root / "play.yml").write_text(PLAYBOOK)
    name = f"pa{random.randint(0, 0xFFFF):04x}"
    (root / "labfile.yml").write_text(labfile(name, free_subnet()))
    handle = Lab(root, CliResult(-1, "", ""))
    try:
        handle.up = handle.cli("up", timeout=1800)
        yield handle
    except BaseException:
        handle.cli("destroy", timeout=600)  # best effort: the failure above is the one to report
        raise
    destroyed = handle.cli("destroy", timeout=600)
    assert destroyed.returncode == 0, destroyed.stderr


# -- provisioning -----------------------------------------------------------------------------


def test_up_reports_the_failing_step_and_provisions_the_others(lab: Lab) -> None:
    err = lab.up.stderr
    assert lab.up.returncode == 1, err
    assert "error: nsfail: step 2/3 (shell) exited 3" in err
    assert "about to fail" in err
    assert (
        "hint: fix the step, then run labctl up (it goes on from this step) or labctl provision nsfail (every step)"
        in err
    )
    assert "up failed for 1 of 4 machines: nsfail" in err
    assert lab.cli("exec", "nsfail", "--", "test", "-e", "/root/never").returncode == 1
    for machine in WORKING:
        assert f"{machine} | step one on {machine}" in err  # live, prefixed output
        assert f"{machine}: step 6/6 (ansible users.yml)" in err
    records = json.loads((lab.root / ".labctl" / "state.json").read_text())["machines"]
    assert all("provisioned_at" in records[m] for m in WORKING)
    assert "provisioned_at" not in records["nsfail"]


@pytest.mark.parametrize("machine", WORKING)
def test_every_step_left_its_mark(lab: Lab, machine: str) -> None:
    out = lab.sh(
        machine,
        "cat /root/runs.txt /root/script-args.txt /root/ansible.txt /srv/site/index.html "
        "/srv/site/img/logo.txt /etc/labctl-test/secret.txt; "
        "stat -c '%a %U' /etc/labctl-test/secret.txt /root/ansible.txt; id -un student",
    )
    assert out.splitlines() == [
        "run",
        "first",
        "second word",
        f"hello from {machine} ({'vm' if machine == 'vm1' else 'lxc' if machine == 'ct1' else 'ns'})",
        "<h1>lab</h1>",
        "logo",
        "s3cret",
        "600 root",
        "640 root",
        "student",
    ]


def test_provision_runs_the_steps_again(lab: Lab) -> None:
    again = lab.cli("provision", "ns1", "ct1")
    assert again.returncode == 0, again.stderr
    assert "ns1: provisioned" in again.stderr and "ct1: provisioned" in again.stderr
    assert lab.sh("ns1", "cat /root/runs.txt").split() == ["run", "run"]
    failing = lab.cli("provision", "nsfail")
    assert failing.returncode == 1
    assert "nsfail: step 2/3 (shell) exited 3" in failing.stderr


# -- access -----------------------------------------------------------------------------------


@pytest.mark.parametrize("machine", WORKING)
def test_exec_passes_stdin_stdout_stderr_and_the_exit_code(lab: Lab, machine: str) -> None:
    result = lab.cli("exec", machine, "--", "sh", "-c", "tr a-z A-Z; echo oops >&2; exit 7", input="hello\n")
    assert result.returncode == 7
    assert result.stdout == "HELLO\n"
    assert "oops" in result.stderr


@pytest.mark.parametrize("machine", WORKING)
def test_exec_t_gives_the_command_a_terminal(lab: Lab, machine: str) -> None:
    command = [*LABCTL, "exec", "-t", machine, "--", "sh", "-c", "tty; exit 5"]
    # `script` runs labctl on a pseudo-terminal, as a user's shell would; shlex.join keeps "tty;
    # exit 5" one argument of sh -c, so the exit code checked is the one labctl returns.
    proc = subprocess.run(
        ["script", "-qefc", shlex.join(command), "/dev/null"],
        cwd=lab.root,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert "/dev/pts/" in proc.stdout
    assert proc.returncode == 5


@pytest.mark.parametrize("machine", WORKING)
def test_labctl_ssh_runs_a_command(lab: Lab, machine: str) -> None:
    result = lab.cli("ssh", machine, "--", "cat", "/root/ansible.txt")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("hello from")


def test_openssh_and_scp_work_with_the_generated_config(lab: Lab, tmp_path: Path) -> None:
    config = tmp_path / "ssh_config"
    written = lab.cli("ssh-config", "--output", str(config))
    assert written.returncode == 0, written.stderr
    assert "# ns1 (ns) runs no sshd: labctl ssh ns1" in config.read_text()
    upload = tmp_path / "up.txt"
    upload.write_text("uploaded\n")
    for machine in SSH_MACHINES:
        ssh = subprocess.run(
            ["ssh", "-F", str(config), "-o", "BatchMode=yes", machine, "cat /root/ansible.txt"],
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        assert ssh.returncode == 0, ssh.stderr
        assert ssh.stdout.startswith(f"hello from {machine}")
        put = subprocess.run(
            ["scp", "-F", str(config), "-o", "BatchMode=yes", str(upload), f"{machine}:/root/up.txt"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert put.returncode == 0, put.stderr
        back = tmp_path / f"back-{machine}.txt"
        get = subprocess.run(
            ["scp", "-F", str(config), "-o", "BatchMode=yes", f"{machine}:/root/up.txt", str(back)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert get.returncode == 0, get.stderr
        assert back.read_text() == "uploaded\n"


def test_ansible_pings_every_machine_over_the_generated_inventory(lab: Lab, tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yml"
    assert lab.cli("inventory", "--write", str(inventory)).returncode == 0
    exported = lab.cli("inventory", "--env").stdout.strip()
    variable, _, value = exported.removeprefix("export ").partition("=")
    env = {**os.environ, variable: value, "ANSIBLE_NOCOLOR": "1", "PATH": f"{BIN}:{os.environ['PATH']}"}
    ping = subprocess.run(
        [str(BIN / "ansible"), "-i", str(inventory), "all", "-m", "ping"],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    assert ping.returncode == 0, ping.stdout + ping.stderr
    for machine in [*WORKING, "nsfail"]:
        assert f"{machine} | SUCCESS" in ping.stdout


# -- host keys (last: it tampers with known_hosts, then puts it back) ------------------------


def test_a_changed_host_key_is_refused_with_the_reset_command(lab: Lab, tmp_path: Path) -> None:
    known_hosts = lab.root / ".labctl" / "known_hosts"
    original = known_hosts.read_text()
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    fake = other.with_suffix(".pub").read_text().split()[1]
    tampered = [
        " ".join([*line.split()[:2], fake]) if line.strip() else line for line in original.splitlines()
    ]
    known_hosts.write_text("\n".join(tampered) + "\n")
    try:
        for args in (["exec", "vm1", "--", "true"], ["provision", "ct1"]):
            refused = lab.cli(*args)
            assert refused.returncode == 1, refused.stderr
            assert "host key" in refused.stderr
            assert f"ssh-keygen -f {known_hosts} -R " in refused.stderr
    finally:
        known_hosts.write_text(original)
    assert lab.cli("exec", "vm1", "--", "true").returncode == 0
