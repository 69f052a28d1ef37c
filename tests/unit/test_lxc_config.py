"""LXC machines without liblxc: the rendered config, the seeded upper dir and snapshot copies."""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from labctl import cgroups
from labctl.drivers import LabContext
from labctl.drivers.lxc import READY_TIMEOUT, LxcDriver, configured_idmap, ready_timeout
from labctl.drivers.lxc_rootfs import Identity, Nic, seed
from labctl.drivers.lxc_snapshots import Snapshots
from labctl.errors import DriverError, UsageError
from labctl.idmap import Idmap
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
IDMAP = Idmap(1000000, 1000000)  # what scripts/setup-host gives root
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
    lower = Path("/var/lib/labctl/boxes/debian-12/rootfs-shifted-1000000-1000000")
    text = driver.config_text(machine, lower, upper, IDMAP)
    check_golden("cache.conf", text)
    assert "lxc.cgroup.memory.limit_in_bytes = 268435456" in text
    assert "lxc.net.1.ipv4.gateway" in text and "lxc.net.0.ipv4.gateway" not in text  # NAT only
    assert "lxc.idmap = u 0 1000000 65536\nlxc.idmap = g 0 1000000 65536\n" in text
    assert "lxc.include = /usr/share/lxc/config/userns.conf" in text
    assert configured_idmap(text) == IDMAP


def test_privileged_config_maps_nothing(driver: LxcDriver) -> None:
    machine = driver.lab.machine("cache")
    upper = driver.directory(machine) / "upper"
    text = driver.config_text(machine, Path("/var/lib/labctl/boxes/debian-12/rootfs"), upper, None)
    check_golden("cache-privileged.conf", text)
    assert "lxc.idmap" not in text and "userns.conf" not in text
    assert configured_idmap(text) is None
    assert configured_idmap("lxc.idmap = u 0 5 65536\n") is None  # half a mapping is none


def test_names_paths_and_address(driver: LxcDriver) -> None:
    machine = driver.lab.machine("cache")
    assert driver.name(machine) == f"labctl-{driver.lab.id}-cache"
    assert driver.directory(machine).parent == Path("/var/lib/labctl/labs") / driver.lab.id / "lxc"
    assert driver.address(machine) == "10.213.7.20"
    assert all(len(nic.host) <= 15 for nic in driver.nics(machine))


def test_the_readiness_timeout_comes_from_the_environment_and_is_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LABCTL_READY_TIMEOUT", raising=False)
    assert ready_timeout() == READY_TIMEOUT
    monkeypatch.setenv("LABCTL_READY_TIMEOUT", "0.5")
    assert ready_timeout() == 0.5
    for bad in ("soon", "0", "-3", "nan", "inf", "1e9"):
        monkeypatch.setenv("LABCTL_READY_TIMEOUT", bad)
        with pytest.raises(UsageError, match="LABCTL_READY_TIMEOUT"):
            ready_timeout()


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


def test_seed_never_writes_through_links_planted_in_the_upper_dir(tmp_path: Path) -> None:
    """Container root owns the upper dir between boots: links it plants there must not be followed.

    The stand-ins play the host's /root/.ssh, an SSH host key, /etc and a whole directory tree.
    """
    lower, upper, host = tmp_path / "lower", tmp_path / "upper", tmp_path / "host"
    for part in ("root", "etc/ssh", "etc/systemd/system"):
        (lower / part).mkdir(parents=True)
    host_ssh, host_etc = host / "root/.ssh", host / "etc"
    host_ssh.mkdir(parents=True)
    host_etc.mkdir()
    (host_ssh / "authorized_keys").write_text("the host's own key\n")
    host_key = host / "ssh_host_ed25519_key"
    host_key.write_text("HOST SECRET\n")
    (host_etc / "hostname").write_text("host\n")
    (upper / "root").mkdir(parents=True)
    (upper / "root/.ssh").symlink_to(host_ssh)  # a directory link on the way
    (upper / "etc/ssh").mkdir(parents=True)
    (upper / "etc/ssh/ssh_host_ed25519_key").symlink_to(host_key)  # a link where the file goes
    (upper / "etc/cloud").symlink_to(host_etc)  # a link to a directory with files in it
    (upper / "etc/hostname").symlink_to(host_etc / "hostname")
    (upper / "etc/systemd").symlink_to(host)  # masking a unit must not land in host/system
    before = {path: path.read_bytes() for path in host.rglob("*") if path.is_file()}
    identity = Identity("cache", "demo.lab", (NIC,), "ssh-ed25519 AAAA lab", "PRIV\n", "ssh-ed25519 B")

    seed(lower, upper, identity)

    assert {path: path.read_bytes() for path in host.rglob("*") if path.is_file()} == before
    assert sorted(path.name for path in host.rglob("*")) == sorted(
        ["root", ".ssh", "authorized_keys", "ssh_host_ed25519_key", "etc", "hostname"]
    )
    for planted in ("root/.ssh", "etc/ssh/ssh_host_ed25519_key", "etc/cloud", "etc/hostname"):
        assert not (upper / planted).is_symlink(), planted
    assert (upper / "root/.ssh/authorized_keys").read_text() == "ssh-ed25519 AAAA lab\n"
    assert (upper / "etc/ssh/ssh_host_ed25519_key").read_text() == "PRIV\n"
    assert (upper / "etc/hostname").read_text() == "cache\n"
    unit = upper / "etc/systemd/system/systemd-remount-fs.service"
    assert os.readlink(unit) == "/dev/null"


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


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """LABCTL_HOME with a stand-in debian-12 box, in a directory others may search (pytest's
    tmp_path sits in a 0700 one, which container root could not pass)."""
    with tempfile.TemporaryDirectory(prefix="labctl-test-") as name:
        root = Path(name)
        root.chmod(0o755)
        box = root / "boxes" / "debian-12"
        for part in ("etc/ssh", "root"):
            (box / "rootfs" / part).mkdir(parents=True)
        (box / "rootfs/root").chmod(0o700)
        meta = {"name": "debian-12", "artefacts": {"rootfs.tar.zst": {"size": 1, "sha256": "0" * 64}}}
        (box / "box.json").write_text(json.dumps(meta))
        monkeypatch.setenv("LABCTL_HOME", str(root))
        monkeypatch.setattr(cgroups, "layout", lambda: cgroups.Layout.V1)
        monkeypatch.setattr("labctl.drivers.lxc.host_idmap", lambda: IDMAP)
        yield root


def lab_driver(tmp_path: Path, extra: str = "") -> LxcDriver:
    (tmp_path / "labfile.yml").write_text(LABFILE + extra)
    return LxcDriver(LabContext(load_lab(str(tmp_path / "labfile.yml"))))


def owner(path: Path) -> tuple[int, int]:
    info = path.lstat()
    return info.st_uid, info.st_gid


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to container root needs root")
def test_an_unprivileged_machine_is_handed_to_container_root(home: Path, tmp_path: Path) -> None:
    driver = lab_driver(tmp_path)
    machine = driver.lab.machine("cache")
    driver._write(machine)
    directory = driver.directory(machine)
    root = (1000000, 1000000)
    assert owner(directory) == root and directory.stat().st_mode & 0o777 == 0o700
    assert owner(directory / "upper") == root and owner(directory / "work") == root
    assert (directory / "upper").stat().st_mode & 0o777 == 0o755  # the container's /, as the box's
    upper = directory / "upper"
    for seeded in ("root/.ssh/authorized_keys", "etc/ssh/ssh_host_ed25519_key", "etc/hostname"):
        assert owner(upper / seeded) == root, seeded  # host root's file would be nobody's inside
    assert owner(upper / "etc/cloud") == root  # not in the box: made for container root
    assert owner(upper / "root") == root and (upper / "root").stat().st_mode & 0o777 == 0o700
    assert owner(upper / "etc/systemd/system/sys-kernel-debug.mount") == root
    for step in (home, home / "labs", driver.context.data_dir, driver.lxcpath):
        assert step.stat().st_mode & 0o001, step  # container root passes, search only
    config = (directory / "config").read_text()
    assert configured_idmap(config) == IDMAP
    shifted = home / "boxes/debian-12/rootfs-shifted-1000000-1000000"
    assert f"lxc.rootfs.path = overlay:{shifted}:{upper}" in config
    assert owner(shifted / "etc/ssh") == root
    described = driver._describe(machine)
    assert described["privileged"] is False
    assert described["idmap"] == {"uid": 1000000, "gid": 1000000, "size": 65536}


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_a_privileged_machine_stays_privileged_whatever_the_labfile_says(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    privileged = lab_driver(tmp_path, "    privileged: true\n")
    machine = privileged.lab.machine("cache")
    assert machine.privileged
    privileged._write(machine)
    directory = privileged.directory(machine)
    assert owner(directory) == (0, 0) and directory.stat().st_mode & 0o777 == 0o700
    assert owner(directory / "upper/root/.ssh/authorized_keys") == (0, 0)
    config = (directory / "config").read_text()
    assert configured_idmap(config) is None
    assert f"overlay:{home}/boxes/debian-12/rootfs:" in config
    assert not list((home / "boxes/debian-12").glob("rootfs-shifted-*"))
    # The labfile drops the key (or an older labctl made it): the machine keeps its config.
    default = lab_driver(tmp_path)
    machine = default.lab.machine("cache")
    assert not machine.privileged
    assert default.idmap(machine) is None
    default._write(machine)
    assert configured_idmap((directory / "config").read_text()) is None
    assert owner(directory / "upper/etc/hostname") == (0, 0)
    monkeypatch.setattr("labctl.drivers.lxc.which", lambda program: f"/usr/bin/{program}")
    capsys.readouterr()
    default.check_host([machine])  # at every up, the machine running or not
    err = capsys.readouterr().err
    assert "cache runs privileged" in err and "labctl destroy cache && labctl up" in err
    assert default._describe(machine)["privileged"] is True
    privileged.check_host([privileged.lab.machine("cache")])
    assert "cache" not in capsys.readouterr().err  # asked for and got: nothing to say


def test_seed_gives_files_and_new_dirs_to_the_owner(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("chown needs root")
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    (lower / "etc").mkdir(parents=True)
    os.chown(lower / "etc", 1000000, 1000000)  # a shifted box
    upper.mkdir()
    identity = Identity("cache", "demo.lab", (NIC,), "ssh-ed25519 AAAA lab", "PRIV\n", "ssh-ed25519 B")
    seed(lower, upper, identity, (1000000, 1000001))
    assert owner(upper / "etc") == (1000000, 1000000)  # the box's (shifted) owner
    assert owner(upper / "root") == (1000000, 1000001)  # none in the box: the given owner
    assert owner(upper / "root/.ssh/authorized_keys") == (1000000, 1000001)
    assert (upper / "root/.ssh/authorized_keys").stat().st_mode & 0o777 == 0o600
