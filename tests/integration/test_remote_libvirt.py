"""A VM on a remote libvirt host (`qemu+ssh://`), end to end through the CLI.

The "remote" host is this one, reached the way a real one is: through an sshd the test starts on
127.0.0.1 with its own host key and client key, so libvirt's ssh transport, the volume uploads
over the libvirt stream, the lab network made by that libvirtd and labctl's SSH jump to the guest
are all exercised. Nothing of the lab is a local file: the test checks that the domain's disk and
kernel are volumes of labctl's pool, as they must be on a real remote host.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import libvirt
import pytest
from tests_support import CliResult, free_subnet, run_labctl

from labctl import host
from labctl.box import Box
from labctl.drivers.vm import volumes
from labctl.labfile import load_lab

pytestmark = pytest.mark.integration

SSHD = Path("/usr/sbin/sshd")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"sshd exited: {log.read_text()}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"sshd did not listen on {port}: {log.read_text()}")


@pytest.fixture(scope="module")
def remote_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A libvirt URI over SSH to this host, through a private sshd on 127.0.0.1."""
    assert SSHD.exists(), "openssh-server is installed by scripts/test"
    home = tmp_path_factory.mktemp("sshd")
    for key in ("host", "client"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(home / key)], check=True)
    shutil.copy(home / "client.pub", home / "authorized_keys")
    port = _free_port()
    (home / "sshd_config").write_text(
        textwrap.dedent(f"""\
        ListenAddress 127.0.0.1:{port}
        HostKey {home}/host
        AuthorizedKeysFile {home}/authorized_keys
        PermitRootLogin prohibit-password
        PasswordAuthentication no
        KbdInteractiveAuthentication no
        UsePAM no
        StrictModes no
        AllowTcpForwarding yes
        PidFile none
        """)
    )
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    log = home / "sshd.log"
    proc = subprocess.Popen([SSHD, "-D", "-f", home / "sshd_config", "-E", log])
    # libvirt's ssh transport runs OpenSSH, which checks the user's known_hosts: the host key
    # goes there for the test's duration, as `ssh-keyscan` after a check would put it.
    known_hosts = Path.home() / ".ssh" / "known_hosts"
    known_hosts.parent.mkdir(mode=0o700, exist_ok=True)
    entry = f"[127.0.0.1]:{port} " + " ".join((home / "host.pub").read_text().split()[:2])
    with known_hosts.open("a") as stream:
        stream.write(entry + "\n")
    try:
        _wait_for(port, proc, log)
        yield f"qemu+ssh://root@127.0.0.1:{port}/system?keyfile={home}/client"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        kept = [line for line in known_hosts.read_text().splitlines() if line != entry]
        known_hosts.write_text("".join(f"{line}\n" for line in kept))


def virsh(*args: str) -> str:
    return subprocess.run(
        ["virsh", "-q", "-c", "qemu:///system", *args], capture_output=True, text=True
    ).stdout


def labctl(root: Path, *args: str) -> CliResult:
    result = run_labctl("-f", str(root / "labfile.yml"), *args, cwd=root, timeout=900)
    assert result.returncode == 0, f"labctl {' '.join(args)}: {result.stdout}\n{result.stderr}"
    return result


def test_vm_on_a_remote_libvirt_host(debian_box: Box, remote_uri: str, tmp_path: Path) -> None:
    name = f"rmt{uuid.uuid4().hex[:6]}"
    (tmp_path / "labfile.yml").write_text(
        textwrap.dedent(f"""\
        name: {name}
        libvirt_uri: "{remote_uri}"
        networks:
          lan: {{cidr: {free_subnet()}, mode: isolated}}
        machines:
          far: {{kind: vm, box: {debian_box.name}, memory: 768M, networks: [lan]}}
        """)
    )
    doctor = run_labctl("-f", str(tmp_path / "labfile.yml"), "--json", "doctor", cwd=tmp_path)
    checks = json.loads(doctor.stdout)
    [remote_libvirt] = [c for c in checks if c["name"] == "libvirt" and remote_uri in c["detail"]]
    assert remote_libvirt["status"] == "ok", remote_libvirt
    by_name = {c["name"]: c for c in checks}
    assert by_name["ssh to guests"]["status"] == "ok", by_name["ssh to guests"]
    # The "remote" host is this one: its verdict on KVM must match this host's own.
    assert (by_name["kvm (remote)"]["status"] == "ok") == host.kvm_usable()[0], by_name["kvm (remote)"]
    # Start without an uploaded copy of the box (prune keeps copies that VMs are backed by).
    kept = labctl(tmp_path, "box", "prune", "--libvirt-uri", remote_uri)
    uploads_expected = f"kept box.{debian_box.name}." not in kept.stderr
    try:
        up = labctl(tmp_path, "up")
        assert "far: created" in up.stderr + up.stdout
        if uploads_expected:
            assert "uploading disk.qcow2" in up.stderr  # the box went over the libvirt stream
        domain = virsh("list", "--name").split()
        [dom] = [d for d in domain if d.startswith(f"labctl-{name}-")]
        xml = virsh("dumpxml", dom)
        # On the remote host, the disk, seed and kernel are volumes of labctl's pool.
        for element in ("source file='", "<kernel>", "<initrd>"):
            assert f"{element}{volumes.POOL_PATH}/" in xml, element
        assert not list(tmp_path.glob(".labctl/**/disk.qcow2"))
        # The serial log is a file of the remote host; labctl reads it back over libvirt when a
        # create fails (to keep it in .labctl/logs/).
        conn = libvirt.open(remote_uri)  # not labctl's cached one: closed right after
        try:
            pool = volumes.existing_pool(conn)
            lab_id = load_lab(str(tmp_path / "labfile.yml")).id
            log = tmp_path / "console.log"
            assert volumes.download(conn, pool, volumes.MachineVolumes(lab_id, "far").console_log, log)
        finally:
            conn.close()
        assert "Linux version" in log.read_text(errors="replace")

        assert labctl(tmp_path, "exec", "far", "--", "cat", "/etc/hostname").stdout.strip() == "far"
        config = tmp_path / "ssh_config"
        config.write_text(labctl(tmp_path, "ssh-config").stdout)
        assert "ProxyCommand ssh -p" in config.read_text()
        ssh = subprocess.run(
            ["ssh", "-F", str(config), "far", "--", "uname", "-n"], capture_output=True, text=True, timeout=60
        )
        assert (ssh.returncode, ssh.stdout.strip()) == (0, "far"), ssh.stderr
        # Ansible over the generated inventory reaches the guest through the same jump.
        inventory = tmp_path / "inventory.yml"
        labctl(tmp_path, "inventory", "--write", str(inventory))
        bin_dir = Path(sys.executable).parent
        ping = subprocess.run(
            [str(bin_dir / "ansible"), "-i", str(inventory), "far", "-m", "ping"],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "ANSIBLE_NOCOLOR": "1", "PATH": f"{bin_dir}:{os.environ['PATH']}"},
            stdin=subprocess.DEVNULL,
        )
        assert "far | SUCCESS" in ping.stdout, ping.stdout + ping.stderr
        status = labctl(tmp_path, "status").stdout
        assert "running" in status and "HOST" in status and "127.0.0.1" in status, status
    finally:
        labctl(tmp_path, "destroy")
    assert not [d for d in virsh("list", "--all", "--name").split() if d.startswith(f"labctl-{name}-")]
    assert not [n for n in virsh("net-list", "--all", "--name").split() if n.startswith(f"labctl-{name}-")]
    assert not [v for v in virsh("vol-list", volumes.POOL_NAME).split() if v.startswith(f"{name}-")]
    assert not (tmp_path / ".labctl").exists()
    # The uploaded box stays as a cache until pruned; with no VM backed by it, prune removes it.
    prune = labctl(tmp_path, "box", "prune", "--libvirt-uri", remote_uri)
    assert f"removed box.{debian_box.name}." in prune.stderr + prune.stdout
    assert not [v for v in virsh("vol-list", volumes.POOL_NAME).split() if v.startswith("box.")]
