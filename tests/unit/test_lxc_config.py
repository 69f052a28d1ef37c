"""LXC machines without liblxc: the rendered config, the seeded upper dir and snapshot copies."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from labctl import cgroups
from labctl.drivers import LabContext
from labctl.drivers.lxc import LxcDriver
from labctl.drivers.lxc_rootfs import Identity, Nic, seed
from labctl.drivers.lxc_snapshots import Snapshots
from labctl.errors import DriverError, UsageError
from labctl.labfile import load_lab

GOLDEN = Path(__file__).parent / "golden" / "lxc"
REGENERATE = os.environ.get("LABCTL_REGENERATE_GOLDEN") == "1"
LABFILE = """\
name: demo
networks:
  lan: {cidr: 10.213.7.0/24, mode: isolated}
  out: {cidr: 10.213.8.0/24, mode: nat}
machines:
  cache:
    kind: lxc
    box: debian-12
    cpus: 1
    memory: 256M
    networks: [{name: lan, ip: 10.213.7.20}, out]
"""
NIC = Nic("lan", "lcx0", "eth0", "lcbr0", "52:54:00:aa:bb:cc", "10.213.7.20/24", "10.213.7.1", False)


def check_golden(name: str, text: str) -> None:
    golden = GOLDEN / name
    if REGENERATE:
        golden.write_text(text)
    assert text == golden.read_text(), f"regenerate with LABCTL_REGENERATE_GOLDEN=1 if intended: {golden}"


@pytest.fixture
def driver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LxcDriver:
    (tmp_path / "labfile.yml").write_text(LABFILE)
    lab = load_lab(str(tmp_path / "labfile.yml"))
    # A fixed location, so names, MACs and paths in the golden file do not depend on tmp_path.
    lab = dataclasses.replace(lab, file=Path("/srv/labs/demo/labfile.yml"))
    monkeypatch.setenv("LABCTL_HOME", "/var/lib/labctl")
    monkeypatch.setattr(cgroups, "layout", lambda: cgroups.Layout.V1)
    return LxcDriver(LabContext(lab))


def test_config_matches_golden(driver: LxcDriver) -> None:
    machine = driver.lab.machine("cache")
    upper = driver.directory(machine) / "upper"
    text = driver.config_text(machine, Path("/var/lib/labctl/boxes/debian-12/rootfs"), upper)
    check_golden("cache.conf", text)
    assert "lxc.cgroup.memory.limit_in_bytes = 268435456" in text
    assert "lxc.net.1.ipv4.gateway" in text and "lxc.net.0.ipv4.gateway" not in text  # NAT only


def test_names_paths_and_address(driver: LxcDriver) -> None:
    machine = driver.lab.machine("cache")
    assert driver.name(machine) == f"labctl-{driver.lab.id}-cache"
    assert driver.directory(machine).parent == Path("/var/lib/labctl/labs") / driver.lab.id / "lxc"
    assert driver.address(machine) == "10.213.7.20"
    assert all(len(nic.host) <= 15 for nic in driver.nics(machine))


def test_v2_limits() -> None:
    limits = dict(cgroups.lxc_limits(2, 512 * 1024**2, cgroups.Layout.V2))
    assert limits["lxc.cgroup2.memory.max"] == str(512 * 1024**2)
    assert limits["lxc.cgroup2.cpu.max"] == "200000 100000"


def test_seed_writes_identity_with_the_box_owner_and_modes(tmp_path: Path) -> None:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    (lower / "root").mkdir(parents=True)
    (lower / "root").chmod(0o700)
    (lower / "etc").mkdir()
    upper.mkdir()
    identity = Identity(
        "cache", "demo.lab", (NIC,), "ssh-ed25519 AAAA lab", "PRIVATE\n", "ssh-ed25519 BBBB host"
    )
    seed(lower, upper, identity)
    assert (upper / "root").stat().st_mode & 0o777 == 0o700
    assert (upper / "root/.ssh").stat().st_mode & 0o777 == 0o700
    assert (upper / "root/.ssh/authorized_keys").read_text() == "ssh-ed25519 AAAA lab\n"
    assert (upper / "etc/ssh/ssh_host_ed25519_key").stat().st_mode & 0o777 == 0o600
    assert (upper / "etc/cloud/cloud-init.disabled").exists()
    assert (upper / "etc/hostname").read_text() == "cache\n"
    check_golden("eth0.network", (upper / "etc/systemd/network/10-labctl-eth0.network").read_text())
    check_golden("resolv.conf", (upper / "etc/resolv.conf").read_text())


def test_snapshot_save_restore_list_delete(tmp_path: Path) -> None:
    snapshots = Snapshots(tmp_path)
    (tmp_path / "upper" / "etc").mkdir(parents=True)
    (tmp_path / "upper" / "etc" / "before").write_text("1")
    snapshots.save("clean")
    (tmp_path / "upper" / "etc" / "after").write_text("2")
    (tmp_path / "upper" / "etc" / "before").write_text("changed")
    snapshots.restore("clean")
    assert not (tmp_path / "upper" / "etc" / "after").exists()
    assert (tmp_path / "upper" / "etc" / "before").read_text() == "1"
    assert snapshots.tags() == ["clean"]
    with pytest.raises(DriverError):
        snapshots.save("clean")
    with pytest.raises(UsageError):
        snapshots.save("../escape")
    snapshots.delete("clean")
    assert snapshots.tags() == []
