"""VMs on a remote libvirt host: the jump host taken from the URI, where networks live, the
accelerator read from the remote capabilities, and the pool volumes' names and lifecycle."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from labctl import accel, placement
from labctl.drivers import SshTarget
from labctl.drivers.vm import volumes
from labctl.errors import HostError, LabfileError
from labctl.labfile import load_lab
from labctl.labfile.models import Accel
from labctl.provision.inventory import ssh_common_args
from labctl.sshjump import JumpHost

REMOTE = "qemu+ssh://alice@lab1:2222/system?keyfile=/keys/lab%20one&known_hosts=/kh"


def test_jump_host_comes_from_the_uri() -> None:
    jump = JumpHost.from_uri(REMOTE, ssh_config=Path("/nonexistent"))
    assert jump is not None
    assert (jump.alias, jump.hostname, jump.port, jump.user) == ("lab1", "lab1", 2222, "alice")
    assert jump.keyfile == Path("/keys/lab one") and jump.known_hosts == Path("/kh")
    assert jump.verify
    assert str(jump) == "alice@lab1:2222"


def test_local_uris_have_no_jump_host() -> None:
    for uri in ("qemu:///system", "qemu:///session", "qemu+unix:///system", "test:///default"):
        assert JumpHost.from_uri(uri) is None
        assert not placement.is_remote(uri)


def test_remote_uri_without_ssh_is_refused() -> None:
    with pytest.raises(HostError, match="need an SSH transport, not tcp") as raised:
        JumpHost.from_uri("qemu+tcp://lab1/system")
    assert raised.value.hint and "qemu+ssh://" in raised.value.hint


def test_no_verify_is_the_users_explicit_choice() -> None:
    jump = JumpHost.from_uri("qemu+ssh://lab1/system?no_verify=1", ssh_config=Path("/nonexistent"))
    assert jump is not None and not jump.verify


def test_jump_host_reads_the_users_ssh_config(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text("Host lab1\n  HostName 192.0.2.7\n  Port 2200\n  User bob\n  IdentityFile /keys/bob\n")
    jump = JumpHost.from_uri("qemu+ssh://lab1/system", ssh_config=config)
    assert jump is not None
    assert (jump.hostname, jump.port, jump.user, jump.keyfile) == (
        "192.0.2.7",
        2200,
        "bob",
        Path("/keys/bob"),
    )
    # What the URI says wins over the config, as with OpenSSH's command line.
    explicit = JumpHost.from_uri("qemu+ssh://carol@lab1:22/system", ssh_config=config)
    assert explicit is not None and (explicit.user, explicit.port) == ("carol", 22)


def test_proxy_command_is_shell_quoted() -> None:
    jump = JumpHost.from_uri(REMOTE, ssh_config=Path("/nonexistent"))
    assert jump is not None
    command = jump.proxy_command()
    assert shlex.split(command) == [
        "ssh",
        "-p",
        "2222",
        "-i",
        "/keys/lab one",
        "-o",
        "UserKnownHostsFile=/kh",
        "-l",
        "alice",
        "-W",
        "%h:%p",
        "lab1",
    ]


def test_openssh_and_ansible_go_through_the_jump_host() -> None:
    jump = JumpHost.from_uri(REMOTE, ssh_config=Path("/nonexistent"))
    target = SshTarget("10.9.8.7", 22, "root", Path("/lab/key"), jump)
    option, proxy = target.proxy_options()
    assert option == "-o" and proxy.startswith("ProxyCommand=ssh -p 2222 ")
    assert proxy.endswith(" -W %h:%p lab1")
    args = shlex.split(ssh_common_args(Path("/lab/known_hosts"), "10.9.8.7", target.proxy_options()))
    assert args[:2] == ["-o", proxy]  # one argument for Ansible's shlex split, quotes intact
    assert "StrictHostKeyChecking=yes" in args
    assert SshTarget("10.9.8.7", 22, "root", Path("/lab/key")).proxy_options() == []


# -- placement --------------------------------------------------------------------------------------


def _lab(write_labfile: Callable[[str], Path], text: str) -> Any:
    write_labfile(text)
    return load_lab(None)


def test_networks_live_with_their_machines(write_labfile: Callable[[str], Path]) -> None:
    lab = _lab(
        write_labfile,
        "networks: {lan: {cidr: 10.61.0.0/24}, far: {cidr: 10.62.0.0/24}, empty: {cidr: 10.63.0.0/24}}\n"
        "machines:\n"
        "  c: {kind: lxc, box: debian-12, networks: [lan]}\n"
        f"  v: {{kind: vm, box: debian-12, networks: [far], libvirt_uri: '{REMOTE}'}}\n",
    )
    assert placement.network_uri(lab, lab.network("lan")) == "qemu:///system"
    assert placement.network_uri(lab, lab.network("far")) == REMOTE
    assert placement.network_uri(lab, lab.network("empty")) == "qemu:///system"
    assert placement.uris(lab) == ["qemu:///system", REMOTE]
    placement.check(lab)


def test_a_network_cannot_span_hosts(write_labfile: Callable[[str], Path]) -> None:
    lab = _lab(
        write_labfile,
        f"libvirt_uri: '{REMOTE}'\n"
        "networks: {lan: {cidr: 10.61.0.0/24}}\n"
        "machines:\n"
        "  c: {kind: lxc, box: debian-12, networks: [lan]}\n"
        "  v: {kind: vm, box: debian-12, networks: [lan]}\n",
    )
    with pytest.raises(HostError, match="network lan joins machines on different hosts") as raised:
        placement.check(lab)
    assert "this host: c" in raised.value.message and "alice@lab1:2222: v" in raised.value.message
    # Containers always run here, whatever the lab's libvirt_uri says.
    assert placement.machine_uri(lab, lab.machine("c")) == "qemu:///system"


def test_a_remote_host_without_ssh_is_refused_by_validate(write_labfile: Callable[[str], Path]) -> None:
    with pytest.raises(LabfileError, match="'qemu\\+tls' transport is not supported") as raised:
        _lab(
            write_labfile,
            "machines: {v: {kind: vm, box: debian-12, libvirt_uri: 'qemu+tls://lab-host/system'}}\n",
        )
    assert raised.value.problems[0].path == "machines.v.libvirt_uri"


# -- accelerator of a remote host ---------------------------------------------------------------------


def _caps(features: list[str]) -> str:
    flags = "".join(f"<feature name='{f}'/>" for f in features)
    return (
        f"<capabilities><host><cpu><arch>x86_64</arch>{flags}</cpu></host>"
        "<guest><arch name='x86_64'><domain type='qemu'/><domain type='kvm'/></arch></guest></capabilities>"
    )


class FakeConn:
    def __init__(self, caps: str) -> None:
        self.caps = caps

    def getCapabilities(self) -> str:
        return self.caps


@pytest.mark.parametrize(
    ("features", "engine", "why"),
    [
        (["vmx", "ssse3"], accel.Engine.KVM, "offers KVM"),
        (["svm"], accel.Engine.KVM, "offers KVM"),
        (["ssse3"], accel.Engine.TCG, "no vmx/svm flag"),  # /dev/kvm there, but no VT-x: like this host
    ],
)
def test_remote_kvm_needs_the_cpu_flag(
    monkeypatch: pytest.MonkeyPatch, features: list[str], engine: accel.Engine, why: str
) -> None:
    monkeypatch.setattr("labctl.libvirt_util.connect", lambda _uri: FakeConn(_caps(features)))
    choice = accel.choose(Accel.AUTO, REMOTE)
    assert choice.engine is engine and why in choice.reason


# -- pool and volumes -------------------------------------------------------------------------------


def test_pool_and_volume_xml_are_valid() -> None:
    validate = shutil.which("virt-xml-validate")
    assert validate, "virt-xml-validate comes with libvirt-clients (scripts/setup-host installs it)"
    from labctl import templating

    documents = {
        "storagepool": templating.render(
            "libvirt/pool.xml.j2", name=volumes.POOL_NAME, path=volumes.POOL_PATH
        ),
        "storagevol": volumes._volume_xml("lab-1.web.disk.qcow2", 8 << 30, "qcow2", backing="/p/box.qcow2"),
    }
    for schema, xml in documents.items():
        proc = subprocess.run([validate, "-", schema], input=xml, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr


@pytest.fixture
def test_pool() -> Any:
    import libvirt

    conn = libvirt.open("test:///default")
    pool = volumes.ensure_pool(conn)
    yield conn, pool
    for volume in pool.listAllVolumes(0):
        volume.delete(0)
    pool.destroy()
    pool.undefine()


def _volume(pool: Any, name: str) -> None:
    pool.createXML(volumes._volume_xml(name, 1 << 20, "raw"), 0)


def test_removing_a_machine_never_touches_look_alike_names(test_pool: Any) -> None:
    _conn, pool = test_pool
    mine = volumes.MachineVolumes("lab-1a2b3c", "web")
    others = [
        "lab-1a2b3c.web-2.disk.qcow2",
        "lab-1a2b3c-x-ffffff.web.disk.qcow2",
        "box.debian-12.abc.disk.qcow2",
    ]
    for name in [mine.disk, mine.seed, *others]:
        _volume(pool, name)
    volumes.remove(pool, mine.prefix)
    assert sorted(v.name() for v in pool.listAllVolumes(0)) == sorted(others)


def test_a_box_is_uploaded_once_and_an_unfinished_upload_is_redone(
    test_pool: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn, pool = test_pool
    uploads: list[str] = []

    def fake_upload(_conn: Any, pool: Any, name: str, _source: Path, fmt: str) -> Any:
        uploads.append(name)  # the test driver cannot stream; the bookkeeping is what is tested
        return pool.createXML(volumes._volume_xml(name, 1 << 20, fmt), 0)

    monkeypatch.setattr(volumes, "upload", fake_upload)
    source = tmp_path / "disk.qcow2"
    source.write_bytes(b"qcow")
    first = volumes._uploaded(conn, pool, "box.x.1.disk.qcow2", source, "qcow2")
    again = volumes._uploaded(conn, pool, "box.x.1.disk.qcow2", source, "qcow2")
    assert first == again and uploads == ["box.x.1.disk.qcow2"]
    pool.storageVolLookupByName("box.x.1.disk.qcow2.ok").delete(0)  # as if the upload was cut short
    volumes._uploaded(conn, pool, "box.x.1.disk.qcow2", source, "qcow2")
    assert uploads == ["box.x.1.disk.qcow2", "box.x.1.disk.qcow2"]


def test_prune_keeps_the_box_versions_vms_are_backed_by(test_pool: Any) -> None:
    _conn, pool = test_pool
    for stem in ("box.debian-12.aaaa", "box.debian-12.bbbb"):
        for suffix in ("disk.qcow2", "disk.qcow2.ok", "vmlinuz", "vmlinuz.ok"):
            _volume(pool, f"{stem}.{suffix}")
    used = pool.storageVolLookupByName("box.debian-12.bbbb.disk.qcow2").path()
    pool.createXML(volumes._volume_xml("lab-1a2b3c.web.disk.qcow2", 1 << 30, "qcow2", backing=used), 0)
    removed, kept = volumes.prune_boxes(pool)
    assert (removed, kept) == (["box.debian-12.aaaa"], ["box.debian-12.bbbb"])
    left = sorted(v.name() for v in pool.listAllVolumes(0))
    assert left == [
        "box.debian-12.bbbb.disk.qcow2",
        "box.debian-12.bbbb.disk.qcow2.ok",
        "box.debian-12.bbbb.vmlinuz",
        "box.debian-12.bbbb.vmlinuz.ok",
        "lab-1a2b3c.web.disk.qcow2",
    ]


def test_bench_leaves_remote_vms_out(
    write_labfile: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from labctl.bench.targets import HostTarget
    from labctl.cli.bench import _targets
    from labctl.lab import LabRunner

    lab = _lab(write_labfile, f"machines: {{far: {{kind: vm, box: debian-12, libvirt_uri: '{REMOTE}'}}}}\n")
    targets = _targets(LabRunner(lab), [])
    assert [type(t) for t in targets] == [HostTarget]
    assert "far runs on a remote libvirt host; left out" in capsys.readouterr().err


def test_a_lab_entirely_on_a_remote_host_needs_no_libvirtd_here(write_labfile: Callable[[str], Path]) -> None:
    lab = _lab(
        write_labfile,
        f"libvirt_uri: '{REMOTE}'\n"
        "networks: {lan: {cidr: 10.61.0.0/24}, spare: {cidr: 10.62.0.0/24}}\n"
        "machines: {v: {kind: vm, box: debian-12, networks: [lan]}}\n",
    )
    assert placement.network_uri(lab, lab.network("spare")) == REMOTE  # the lab's default host
    assert placement.uris(lab) == [REMOTE]
