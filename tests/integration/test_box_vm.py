"""The debian-12 box boots as a VM under libvirt (TCG) and answers SSH with a key from cloud-init.

Deliberately independent of the VM driver: a transient isolated network with a unique name and an
unused 10.x subnet, a qcow2 overlay on disk.qcow2, a NoCloud seed ISO labelled cidata, and a
transient domain booting the box's kernel and initrd directly. Everything is destroyed after.
"""

from __future__ import annotations

import ipaddress
import random
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labctl.box import Box

pytestmark = pytest.mark.integration

BOOT_TIMEOUT = 900  # seconds from domain start to a working SSH login, under TCG on a busy host


@pytest.fixture
def vmdir() -> Iterator[Path]:
    # Not tmp_path: that is 0700, and QEMU (libvirt-qemu) must reach the files in it.
    path = Path(tempfile.mkdtemp(prefix="labctl-boxvm-", dir="/var/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def conn() -> Iterator[Any]:
    libvirt = pytest.importorskip("libvirt")
    connection = libvirt.open("qemu:///system")
    try:
        yield connection
    finally:
        connection.close()


def free_subnet(conn: Any) -> ipaddress.IPv4Network:
    """A 10.x.y.0/24 that neither the host's routes nor any libvirt network use."""
    used = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True, check=True).stdout
    for net in conn.listAllNetworks():
        used += net.XMLDesc(0)
    for _ in range(200):
        subnet = ipaddress.IPv4Network(f"10.{random.randint(100, 250)}.{random.randint(0, 255)}.0/24")
        if f"10.{subnet.network_address.packed[1]}.{subnet.network_address.packed[2]}." not in used:
            return subnet
    raise AssertionError("no free 10.x.y.0/24 subnet found")


def network_xml(name: str, bridge: str, subnet: ipaddress.IPv4Network) -> str:
    hosts = list(subnet.hosts())
    return f"""<network>
  <name>{name}</name>
  <bridge name='{bridge}' stp='off'/>
  <ip address='{hosts[0]}' netmask='{subnet.netmask}'>
    <dhcp><range start='{hosts[9]}' end='{hosts[99]}'/></dhcp>
  </ip>
</network>"""


def domain_xml(name: str, box: Box, overlay: Path, seed: Path, network: str, console: Path) -> str:
    return f"""<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>1024</memory>
  <vcpu>2</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <kernel>{box.kernel}</kernel>
    <initrd>{box.initrd}</initrd>
    <cmdline>{box.cmdline}</cmdline>
  </os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='{overlay}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source file='{seed}'/>
      <target dev='sda' bus='sata'/>
      <readonly/>
    </disk>
    <interface type='network'>
      <source network='{network}'/>
      <model type='virtio'/>
    </interface>
    <serial type='file'>
      <source path='{console}'/>
      <target port='0'/>
    </serial>
  </devices>
</domain>"""


def make_seed(vmdir: Path, public_key: str, instance: str) -> Path:
    seed = vmdir / "seed"
    seed.mkdir()
    (seed / "user-data").write_text(
        f"#cloud-config\ndisable_root: false\nssh_authorized_keys:\n  - {public_key}\n"
    )
    (seed / "meta-data").write_text(f"instance-id: {instance}\nlocal-hostname: boxtest\n")
    iso = vmdir / "seed.iso"
    subprocess.run(
        ["genisoimage", "-quiet", "-output", str(iso), "-volid", "cidata", "-joliet", "-rock",
         str(seed / "user-data"), str(seed / "meta-data")],
        check=True,
    )  # fmt: skip
    return iso


def wait_for_lease(net: Any, mac: str, deadline: float) -> str:
    while time.monotonic() < deadline:
        for lease in net.DHCPLeases():
            if lease["mac"].lower() == mac.lower():
                return str(lease["ipaddr"])
        time.sleep(2)
    raise AssertionError("the VM got no DHCP lease in time")


def ssh_run(address: str, key: Path, command: str, deadline: float) -> str:
    import paramiko

    last: Exception | None = None
    while time.monotonic() < deadline:
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        try:
            client.connect(address, username="root", key_filename=str(key), timeout=10,
                           allow_agent=False, look_for_keys=False, banner_timeout=30, auth_timeout=30)  # fmt: skip
            _stdin, stdout, _stderr = client.exec_command(command, timeout=300)
            return str(stdout.read().decode())
        except (paramiko.SSHException, OSError) as exc:
            last = exc
            time.sleep(5)
        finally:
            client.close()
    raise AssertionError(f"no SSH login in time: {last}")


def test_disk_and_kernel_boot_under_libvirt(debian_box: Box, vmdir: Path, conn: Any) -> None:
    tag = uuid.uuid4().hex[:6]
    key = vmdir / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    overlay, console = vmdir / "overlay.qcow2", vmdir / "console.log"
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(debian_box.disk), str(overlay)],
        check=True,
    )
    seed = make_seed(vmdir, (vmdir / "id_ed25519.pub").read_text().strip(), f"iid-boxtest-{tag}")
    net = conn.networkCreateXML(network_xml(f"labctl-boxtest-{tag}", f"lbt{tag}", free_subnet(conn)))
    dom = None
    try:
        xml = domain_xml(f"labctl-boxtest-{tag}", debian_box, overlay, seed, net.name(), console)
        dom = conn.createXML(xml, 0)
        mac = _mac(dom.XMLDesc(0))
        deadline = time.monotonic() + BOOT_TIMEOUT
        address = wait_for_lease(net, mac, deadline)
        script = "cat /etc/os-release; findmnt -no SOURCE /; lspci; systemctl is-system-running --wait; systemctl --failed"
        output = ssh_run(address, key, script, deadline)
    except AssertionError as exc:
        tail = console.read_text(errors="replace")[-3000:] if console.exists() else "(no console log)"
        raise AssertionError(f"{exc}\n--- serial console (tail) ---\n{tail}") from exc
    finally:
        if dom is not None:
            dom.destroy()
        net.destroy()
    assert "VERSION_CODENAME=bookworm" in output
    assert "/dev/vda" in output
    assert "Virtio" in output or "Red Hat" in output
    assert "\nrunning\n" in output, output  # no failed units: cloud-init and systemd are happy


def _mac(xml: str) -> str:
    import xml.etree.ElementTree as ET

    found = ET.fromstring(xml).find("./devices/interface/mac")
    assert found is not None
    return found.attrib["address"]
