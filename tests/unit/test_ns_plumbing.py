"""ns machines without runc: names, veth plans, netns scripts and cgroup values."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from labctl import cgroups, netns
from labctl.addressing import Lease
from labctl.drivers import LabContext
from labctl.drivers.containers import container_name
from labctl.drivers.ns import NsDriver
from labctl.labfile import load_lab

LABFILE = """\
name: demo
networks:
  lan: {cidr: 10.213.7.0/24, mode: isolated}
machines:
  probe: {kind: ns, memory: 64M, networks: [lan]}
  bare: {kind: ns, namespaces: [mnt, uts]}
"""


def lease(ip: str) -> Lease:
    return Lease(
        "m", "lan", ipaddress.IPv4Address(ip), "52:54:00:01:02:03", 24, ipaddress.IPv4Address("10.0.0.1")
    )


def test_veth_names_fit_the_kernel_limit_and_differ_per_container() -> None:
    names = {netns.veth_name(f"labctl-lab-{i}", 0) for i in range(100)}
    assert len(names) == 100
    assert all(len(name) <= 15 for name in names)


def test_inside_script_sets_address_and_only_the_routed_default() -> None:
    links = [
        netns.Link("h0", "eth0", "br0", lease("10.0.0.5")),
        netns.Link("h1", "eth1", "br1", lease("10.0.1.5"), default_route=True),
    ]
    script = netns._inside_script(links)
    assert "addr replace 10.0.0.5/24 dev eth0" in script
    assert "link set eth0 address 52:54:00:01:02:03" in script
    assert script.count("route replace default") == 1


def test_isolated_network_gets_no_default_route_and_bare_machine_no_links(tmp_path: Path) -> None:
    (tmp_path / "labfile.yml").write_text(LABFILE)
    lab = load_lab(str(tmp_path / "labfile.yml"))
    driver = NsDriver(LabContext(lab))
    links = driver.links(lab.machine("probe"))
    assert [link.default_route for link in links] == [False]
    assert links[0].bridge.startswith("lcbr")
    assert driver.links(lab.machine("bare")) == []
    assert driver.address(lab.machine("bare")) is None
    assert container_name(driver.context, lab.machine("probe")) == f"labctl-{lab.id}-probe"
    etc = driver._etc_files(lab.machine("probe"))
    assert etc["resolv.conf"].startswith("nameserver 10.213.7.1\n")


def test_cpuset_is_capped_at_the_host() -> None:
    assert cgroups.cpuset(1, available=4) == "0"
    assert cgroups.cpuset(3, available=4) == "0-2"
    assert cgroups.cpuset(8, available=2) == "0-1"


def test_layout_detection(tmp_path: Path) -> None:
    assert cgroups.layout(tmp_path) is cgroups.Layout.V1
    (tmp_path / "cgroup.controllers").write_text("cpu memory\n")
    assert cgroups.layout(tmp_path) is cgroups.Layout.V2
