"""Domain XML of the vm kind: golden files for both device profiles on both engines, validated
with virt-xml-validate and defined on libvirt's test:///default driver.

LABCTL_REGEN_GOLDEN=1 rewrites the golden files from the current templates.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from labctl.accel import Engine
from labctl.drivers.vm.domain import BootFiles, MachineFiles, domain_name, render_xml
from labctl.labfile.models import (
    Accel,
    Attachment,
    DeviceProfile,
    Kind,
    Lab,
    Machine,
    Network,
    NetworkMode,
)
from labctl.libvirt_util import label_of

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "libvirt"
BOOT = BootFiles(
    Path("/var/lib/labctl/boxes/debian-12/disk.qcow2"),
    Path("/var/lib/labctl/boxes/debian-12/vmlinuz"),
    Path("/var/lib/labctl/boxes/debian-12/initrd.img"),
    "root=LABEL=labctl-root rw console=ttyS0",
)


def golden_lab(vm_name: str = "web") -> Lab:
    """A fixed lab (fixed path, so a fixed lab id) with both network modes and all kinds."""
    networks = (
        Network("lan", ipaddress.IPv4Network("10.213.7.0/24"), NetworkMode.ISOLATED),
        Network("wan", ipaddress.IPv4Network("10.213.8.0/24"), NetworkMode.NAT),
    )
    vm = Machine(
        vm_name,
        Kind.VM,
        "debian-12",
        2,
        1024**3,
        networks=(Attachment("lan"), Attachment("wan", ipaddress.IPv4Address("10.213.8.50"))),
        disk=8 * 1024**3,
        devices=DeviceProfile.PARAVIRTUAL,
        accel=Accel.AUTO,
    )
    old = Machine(
        "old",
        Kind.VM,
        "debian-12",
        1,
        512 * 1024**2,
        networks=(Attachment("lan"),),
        devices=DeviceProfile.EMULATED,
    )
    box = Machine("box", Kind.LXC, "debian-12", 1, 256 * 1024**2, networks=(Attachment("lan"),))
    ns = Machine("ns1", Kind.NS, None, 1, 64 * 1024**2, networks=(Attachment("wan"),))
    return Lab("golden", Path("/labs/golden/labfile.yml"), networks, (vm, old, box, ns))


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("LABCTL_REGEN_GOLDEN") == "1":
        path.write_text(text)
    assert path.exists(), f"{path} is missing: run with LABCTL_REGEN_GOLDEN=1"
    assert text == path.read_text(), f"{name} differs from its golden file (LABCTL_REGEN_GOLDEN=1 updates it)"


def validate(xml: str, tmp_path: Path, kind: str) -> None:
    assert shutil.which("virt-xml-validate"), "virt-xml-validate (libvirt-clients) is required"
    path = tmp_path / f"{kind}.xml"
    path.write_text(xml)
    result = subprocess.run(["virt-xml-validate", str(path), kind], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr + result.stdout


def render(profile: DeviceProfile, engine: Engine, lab: Lab | None = None) -> str:
    lab = lab or golden_lab()
    machine = lab.machine("web")
    machine = Machine(**{**machine.__dict__, "devices": profile})
    files = MachineFiles(Path(f"/var/lib/labctl/labs/{lab.id}/vm/{machine.name}"))
    return render_xml(lab, machine, engine, BOOT, files.paths)


CASES = [(p, e) for p in DeviceProfile for e in Engine]


@pytest.mark.parametrize(("profile", "engine"), CASES, ids=[f"{p.value}-{e.value}" for p, e in CASES])
def test_domain_xml_matches_golden_and_validates(
    profile: DeviceProfile, engine: Engine, tmp_path: Path
) -> None:
    xml = render(profile, engine)
    check_golden(f"domain-{profile.value}-{engine.value}.xml", xml)
    validate(xml, tmp_path, "domain")


@pytest.mark.parametrize(("profile", "engine"), CASES, ids=[f"{p.value}-{e.value}" for p, e in CASES])
def test_domain_defines_on_the_test_driver(profile: DeviceProfile, engine: Engine) -> None:
    import libvirt

    conn = libvirt.open("test:///default")
    try:
        dom = conn.defineXML(render(profile, engine))
        try:
            label = label_of(dom.XMLDesc(0))
            assert label is not None
            assert (label.lab_id, label.machine) == (golden_lab().id, "web")
            assert dom.name() == domain_name(golden_lab(), golden_lab().machine("web"))
        finally:
            dom.undefine()
    finally:
        conn.close()


def devices(xml: str) -> ET.Element:
    element = ET.fromstring(xml).find("devices")
    assert element is not None
    return element


def test_paravirtual_uses_virtio_everywhere() -> None:
    dev = devices(render(DeviceProfile.PARAVIRTUAL, Engine.KVM))
    assert [m.get("type") for m in dev.iterfind("interface/model")] == ["virtio", "virtio"]
    assert dev.find("disk[@device='disk']/target").get("bus") == "virtio"  # type: ignore[union-attr]
    assert dev.find("rng").get("model") == "virtio"  # type: ignore[union-attr]
    assert dev.find("console/target[@type='virtio']") is not None
    clock = ET.fromstring(render(DeviceProfile.PARAVIRTUAL, Engine.KVM)).find("clock/timer[@name='kvmclock']")
    assert clock is not None and clock.get("present") == "yes"


def test_emulated_has_no_virtio_device_at_all() -> None:
    xml = render(DeviceProfile.EMULATED, Engine.TCG)
    dev = devices(xml)
    assert "virtio" not in xml
    assert [m.get("type") for m in dev.iterfind("interface/model")] == ["e1000", "e1000"]
    assert dev.find("disk[@device='disk']/target").get("bus") == "sata"  # type: ignore[union-attr]
    assert dev.find("memballoon").get("model") == "none"  # type: ignore[union-attr]
    assert dev.find("rng") is None


def test_engine_sets_domain_type_and_cpu() -> None:
    tcg = ET.fromstring(render(DeviceProfile.PARAVIRTUAL, Engine.TCG))
    kvm = ET.fromstring(render(DeviceProfile.PARAVIRTUAL, Engine.KVM))
    assert (tcg.get("type"), kvm.get("type")) == ("qemu", "kvm")
    assert tcg.findtext("cpu/model") == "qemu64"
    assert kvm.find("cpu").get("mode") == "host-passthrough"  # type: ignore[union-attr]
    assert tcg.find("clock/timer[@name='kvmclock']") is None


def test_seed_is_a_readonly_cdrom_left_out_of_snapshots() -> None:
    cdrom = devices(render(DeviceProfile.PARAVIRTUAL, Engine.TCG)).find("disk[@device='cdrom']")
    assert cdrom is not None
    assert cdrom.get("snapshot") == "no"
    assert cdrom.find("readonly") is not None


def test_user_values_are_escaped() -> None:
    lab = golden_lab(vm_name="web")
    hostile = Machine(**{**lab.machine("web").__dict__, "name": "a'b<c>&\"d"})
    lab = Lab(lab.name, lab.file, lab.networks, (hostile,))
    files = MachineFiles(Path("/x/y"))
    xml = render_xml(lab, hostile, Engine.TCG, BOOT, files.paths)
    root = ET.fromstring(xml)  # parses: nothing broke out of its attribute or element
    label = label_of(xml)
    assert label is not None and label.machine == "a'b<c>&\"d"
    assert root.findtext("name") == domain_name(lab, hostile)


def test_console_log_and_disks_live_in_the_machine_dir() -> None:
    dev = devices(render(DeviceProfile.PARAVIRTUAL, Engine.TCG))
    base = f"/var/lib/labctl/labs/{golden_lab().id}/vm/web/"
    assert dev.find("serial/log").get("file") == base + "console.log"  # type: ignore[union-attr]
    assert dev.find("disk[@device='disk']/source").get("file") == base + "disk.qcow2"  # type: ignore[union-attr]
    assert dev.find("disk[@device='cdrom']/source").get("file") == base + "seed.iso"  # type: ignore[union-attr]
