"""Host probes and `labctl doctor`, against this host's real state."""

from __future__ import annotations

import ipaddress
import json
import subprocess
from collections.abc import Callable
from pathlib import Path

from tests_support import CliResult

from labctl.host import cpu_virt_flag, kvm_usable

INTEL = "processor\t: 0\nflags\t\t: fpu vme de pse vmx sse2\n"
AMD = "processor\t: 0\nflags\t\t: fpu svm sse2\n"
NONE = "processor\t: 0\nflags\t\t: fpu vme de pse sse2 hypervisor\n"


def test_cpu_virtualization_flag() -> None:
    assert cpu_virt_flag(INTEL) == "vmx"
    assert cpu_virt_flag(AMD) == "svm"
    assert cpu_virt_flag(NONE) is None


def test_doctor_reports_every_probe_and_the_kvm_verdict(labdir: Path, cli: Callable[..., CliResult]) -> None:
    result = cli("doctor", "--json", cwd=labdir)
    checks = {c["name"]: c for c in json.loads(result.stdout)}
    expected = {
        "kvm",
        "libvirt",
        "lxc",
        "oci runtime",
        "qemu-img",
        "debootstrap",
        "cgroups",
        "overlayfs",
        "bridge/veth",
        "subordinate ids",
    }
    assert set(checks) == expected
    usable, why = kvm_usable()
    assert checks["kvm"]["status"] == ("ok" if usable else "warn")
    assert why in checks["kvm"]["detail"]
    failing = [c for c in checks.values() if c["status"] == "fail"]
    assert result.returncode == (1 if failing else 0)


def _a_host_subnet() -> tuple[str, str]:
    """A /24 inside the network of one of this host's own (non-loopback) addresses, and its device."""
    links = json.loads(subprocess.run(["ip", "-j", "-4", "addr"], capture_output=True, check=True).stdout)
    for link in links:
        for info in link.get("addr_info", []):
            if link["ifname"] != "lo" and info.get("scope") == "global":
                network = ipaddress.ip_network(f"{info['local']}/{max(info['prefixlen'], 24)}", strict=False)
                return str(network), link["ifname"]
    raise AssertionError("this host has no global IPv4 address to collide with")


def test_doctor_checks_the_lab_too(labdir: Path, cli: Callable[..., CliResult]) -> None:
    subnet, device = _a_host_subnet()
    (labdir / "labfile.yml").write_text(
        f"networks: {{lan: {{cidr: {subnet}}}}}\n"
        "machines: {a: {kind: lxc, box: no-such-box, memory: 800G, networks: [lan]}}\n"
    )
    result = cli("doctor", cwd=labdir)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert any(line.startswith("FAIL  memory") and "the lab asks for 800.0G" in line for line in lines)
    assert any(
        line.startswith("FAIL  subnets") and f"lan {subnet} overlaps" in line and f"on {device}" in line
        for line in lines
    )
    assert any(line.startswith("FAIL  boxes") and "no-such-box" in line for line in lines)
    assert "labctl box build no-such-box" in result.stdout
