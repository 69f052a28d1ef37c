"""Lab ids: 48 bits of the directory's hash, so that directories do not collide; labs made with the
old 6-digit ids keep them (destroy still finds their objects); names built from ids stay within
the kernel's and the runtimes' limits; a clash with another lab's id or interface is refused."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_vm_domain import golden_lab

from labctl import addressing, netns
from labctl.cli import main
from labctl.drivers import LabContext
from labctl.drivers.containers import MAX_NAME, container_name
from labctl.errors import DriverError, StateError
from labctl.labfile import load_lab
from labctl.labfile.models import ID_DIGITS, LEGACY_ID_DIGITS, Lab
from labctl.libvirt_util import network_named_for
from labctl.state import bind

PATHS = [Path(f"/home/student{i % 200}/labs/lab-{i}/labfile.yml") for i in range(20_000)]


def with_path(path: Path, lab: Lab | None = None) -> Lab:
    return dataclasses.replace(lab or golden_lab(), file=path)


def test_ids_of_20000_directories_do_not_collide() -> None:
    ids = {with_path(p).id for p in PATHS}
    assert len(ids) == len(PATHS)
    assert all(len(i) == len("golden-") + ID_DIGITS for i in ids)
    # The old width did collide on the same paths (about 12 pairs are expected at 24 bits).
    legacy = {dataclasses.replace(with_path(p), id_digits=LEGACY_ID_DIGITS).id for p in PATHS}
    assert len(legacy) < len(PATHS)


def test_bridge_names_fit_the_kernel_limit_and_do_not_collide() -> None:
    net = golden_lab().network("lan")
    names = {addressing.bridge_name(with_path(p), net) for p in PATHS}
    assert len(names) == len(PATHS)
    assert {len(n) for n in names} == {15}  # IFNAMSIZ - 1
    legacy = dataclasses.replace(golden_lab(), id_digits=LEGACY_ID_DIGITS)
    assert len(addressing.bridge_name(legacy, net)) == 12  # the name its live bridge has


def test_container_names_with_the_wide_id_are_still_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LABCTL_HOME", str(tmp_path / "home"))
    # A 40-character lab name leaves 3 characters for the machine: labctl-<40>-<12>-<3> is 64.
    lab = dataclasses.replace(golden_lab(), name="l" * 40, file=tmp_path / "labfile.yml")
    context = LabContext(lab)
    box = lab.machine("box")
    assert len(container_name(context, dataclasses.replace(box, name="abc"))) == MAX_NAME
    with pytest.raises(DriverError, match="too long"):
        container_name(context, dataclasses.replace(box, name="abcd"))


def test_a_network_of_a_lab_whose_name_extends_this_id_is_not_ours() -> None:
    mine = "a-0123456789ab"
    assert network_named_for(f"labctl-{mine}-lan", mine)
    assert network_named_for(f"labctl-{mine}-my-net-2", mine)
    other = f"{mine}-b-ba9876543210"  # the id of a lab named a-0123456789ab-b
    assert not network_named_for(f"labctl-{other}-lan", mine)


# -- ids recorded in state ------------------------------------------------------------------

LABFILE = """\
name: trap
libvirt_uri: test:///default
networks: {lan: {cidr: 10.213.201.0/24}}
machines:
  web: {kind: vm, box: debian-12, networks: [lan]}
"""


@pytest.fixture
def lab_file(write_labfile: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("LABCTL_HOME", str(tmp_path / "home"))
    return write_labfile(LABFILE)


def legacy_id(labfile: Path) -> str:
    digest = hashlib.sha256(str(labfile.parent).encode()).hexdigest()[:6]
    return f"trap-{digest}"


def write_state(labfile: Path, lab_id: str, **extra: Any) -> None:
    (labfile.parent / ".labctl").mkdir(mode=0o700)
    data = {"format": 1, "lab_id": lab_id, "machines": {"web": {"kind": "vm"}}, **extra}
    (labfile.parent / ".labctl" / "state.json").write_text(json.dumps(data))


def test_a_new_lab_gets_the_wide_id(lab_file: Path) -> None:
    lab = bind(load_lab(None))
    assert lab.id == f"trap-{hashlib.sha256(str(lab_file.parent).encode()).hexdigest()[:12]}"


def test_the_legacy_id_in_state_is_honoured(lab_file: Path) -> None:
    write_state(lab_file, legacy_id(lab_file))
    lab = bind(load_lab(None))
    assert lab.id == legacy_id(lab_file)
    assert LabContext(load_lab(None)).data_dir.name == legacy_id(lab_file)


def test_a_recorded_id_this_path_does_not_give_is_refused(lab_file: Path) -> None:
    # e.g. a .labctl/ moved here from another lab: its id would aim destroy at that lab.
    other = "trap-" + hashlib.sha256(b"/home/someone/else").hexdigest()[:12]
    write_state(lab_file, other)
    with pytest.raises(StateError, match=f"records lab id {other}, which this labfile does not give"):
        bind(load_lab(None))


def test_destroy_finds_the_objects_of_a_lab_with_a_legacy_id(
    lab_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import libvirt

    # The test driver knows none of the flags labctl undefines with (snapshots, nvram...).
    monkeypatch.setattr(libvirt.virDomain, "undefineFlags", lambda dom, _flags: dom.undefine())
    old = legacy_id(lab_file)

    def label(what: str) -> str:
        return f'<metadata><labctl:lab xmlns:labctl="https://labctl.invalid/xmlns/1" id="{old}" {what}/></metadata>'

    conn = libvirt.open("test:///default")
    conn.defineXML(
        f"<domain type='test'><name>labctl-{old}-web</name><memory>1024</memory>"
        "<os><type>hvm</type></os>" + label('machine="web"') + "</domain>"
    )
    bridge = "lcbr" + hashlib.sha256(f"{old}/lan".encode()).hexdigest()[:8]  # as labctl made it then
    conn.networkDefineXML(
        f"<network><name>labctl-{old}-lan</name><bridge name='{bridge}'/>"
        + label('network="lan"')
        + "</network>"
    )
    write_state(lab_file, old)
    (tmp_path / "home" / "labs" / old / "vm" / "web").mkdir(parents=True)
    assert addressing.bridge_name(bind(load_lab(None)), load_lab(None).network("lan")) == bridge
    try:
        assert main(["destroy"]) == 0
        assert f"labctl-{old}-web" not in [d.name() for d in conn.listAllDomains(0)]
        assert f"labctl-{old}-lan" not in [n.name() for n in conn.listAllNetworks(0)]
        assert not (tmp_path / "home" / "labs" / old).exists()
        assert not (lab_file.parent / ".labctl").exists()
    finally:
        for dom in conn.listAllDomains(0):
            if dom.name() == f"labctl-{old}-web":
                dom.undefine()
        for net in conn.listAllNetworks(0):
            if net.name() == f"labctl-{old}-lan":
                net.undefine()
        conn.close()


# -- collisions -----------------------------------------------------------------------------


def test_a_lab_id_claimed_by_another_labfile_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from test_lab_orchestration import CREATED

    from labctl.drivers import DRIVERS
    from labctl.labfile.models import Kind

    monkeypatch.setitem(DRIVERS, Kind.NS, ("test_lab_orchestration", "FakeDriver"))
    monkeypatch.setenv("LABCTL_HOME", str(tmp_path / "home"))
    # Two directories that give one id (as a searched-for directory could): the id is forced.
    monkeypatch.setattr(Lab, "id", property(lambda self: "same-0123456789ab"))
    CREATED.clear()
    files = []
    for name in ("first", "second"):
        (tmp_path / name).mkdir()
        files.append(tmp_path / name / "labfile.yml")
        files[-1].write_text("name: same\ndefaults: {kind: ns, namespaces: [mnt]}\nmachines: {a: {}}\n")
    assert main(["-f", str(files[0]), "up"]) == 0
    capsys.readouterr()
    for verb in ("up", "destroy"):
        assert main(["-f", str(files[1]), verb]) == 1
        assert f"lab id same-0123456789ab is taken by the lab of {files[0]}" in capsys.readouterr().err
    assert "a" in CREATED  # the second labfile's destroy did not reach the first lab's machine
    assert main(["-f", str(files[0]), "destroy"]) == 0
    assert main(["-f", str(files[1]), "up"]) == 0  # released with the first lab


def test_a_veth_of_another_lab_with_our_name_is_never_deleted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sys_net = tmp_path / "sys-class-net"
    for name in ("lcbrours", "lcbrtheirs", "lcv123"):
        (sys_net / name).mkdir(parents=True)
    (sys_net / "lcv123" / "master").symlink_to(sys_net / "lcbrtheirs")
    monkeypatch.setattr(netns, "SYS_NET", sys_net)
    ran: list[list[str]] = []
    monkeypatch.setattr(netns, "run", lambda argv, **_kw: ran.append(list(argv)))
    lease = addressing.plan(golden_lab())[("box", "lan")]
    link = netns.Link(host="lcv123", inside="eth0", bridge="lcbrours", lease=lease)
    with pytest.raises(DriverError, match="exists on bridge lcbrtheirs, not on this lab's lcbrours"):
        netns.plug("ns-x", [link])
    netns.unplug([link])
    assert ran == []
    (sys_net / "lcv123" / "master").unlink()
    (sys_net / "lcv123" / "master").symlink_to(sys_net / "lcbrours")  # a stale veth of ours
    netns.unplug([link])
    assert ran == [["ip", "link", "delete", "lcv123"]]


def test_validate_reports_the_id_the_lab_keeps(lab_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_state(lab_file, legacy_id(lab_file))
    assert main(["validate", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == legacy_id(lab_file)
