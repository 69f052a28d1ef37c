"""Lab networks: golden XML for both modes, validated, defined and started on test:///default;
reservations for every machine of every kind; collisions with host interfaces and routes."""

from __future__ import annotations

import ipaddress
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_vm_domain import check_golden, golden_lab, validate

from labctl import addressing, network
from labctl.errors import HostError
from labctl.labfile.models import Attachment, Kind, Lab, Machine, Network, NetworkMode
from labctl.libvirt_util import label_of


@pytest.fixture
def test_conn(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """labctl's connections all go to a private test:///default for the test."""
    import libvirt

    conn = libvirt.open("test:///default")
    monkeypatch.setattr(network, "connect", lambda _uri: conn)
    monkeypatch.setattr("labctl.libvirt_util.connect", lambda _uri: conn)
    try:
        yield conn
    finally:
        conn.close()


@pytest.mark.parametrize("name", ["lan", "wan"])
def test_network_xml_matches_golden_and_validates(name: str, tmp_path: Path) -> None:
    lab = golden_lab()
    xml = network.render_xml(lab, lab.network(name))
    check_golden(f"network-{lab.network(name).mode.value}.xml", xml)
    validate(xml, tmp_path, "network")


def test_isolated_has_no_forward_and_nat_does() -> None:
    lab = golden_lab()
    lan = ET.fromstring(network.render_xml(lab, lab.network("lan")))
    wan = ET.fromstring(network.render_xml(lab, lab.network("wan")))
    assert lan.find("forward") is None
    assert wan.find("forward").get("mode") == "nat"  # type: ignore[union-attr]
    assert lan.find("bridge").get("name") == network.bridge_for(lab, "lan")  # type: ignore[union-attr]
    assert lan.find("ip").get("address") == "10.213.7.1"  # type: ignore[union-attr]


def test_every_machine_of_every_kind_is_reserved_and_named() -> None:
    lab = golden_lab()
    root = ET.fromstring(network.render_xml(lab, lab.network("lan")))
    plan = addressing.plan(lab)
    reserved = {(h.get("name"), h.get("mac"), h.get("ip")) for h in root.iterfind("ip/dhcp/host")}
    expected = {(m, plan[(m, "lan")].mac, str(plan[(m, "lan")].ip)) for m in ("web", "old", "box")}
    assert reserved == expected
    names = {h.get("ip"): [n.text for n in h.iterfind("hostname")] for h in root.iterfind("dns/host")}
    assert names[str(plan[("box", "lan")].ip)] == ["box", "box.golden.lab"]
    assert root.find("domain").get("name") == "golden.lab"  # type: ignore[union-attr]
    wan = ET.fromstring(network.render_xml(lab, lab.network("wan")))
    assert {h.get("name") for h in wan.iterfind("ip/dhcp/host")} == {"web", "ns1"}


def test_networks_define_and_start_on_the_test_driver(test_conn: Any) -> None:
    lab = golden_lab()
    network.ensure_networks(lab)
    try:
        for net in lab.networks:
            obj = test_conn.networkLookupByName(addressing.libvirt_network_name(lab, net))
            assert obj.isActive()
            label = label_of(obj.XMLDesc(0))
            assert label is not None and (label.lab_id, label.network) == (lab.id, net.name)
        network.ensure_networks(lab)  # idempotent
    finally:
        network.remove_networks(lab)
    names = [n.name() for n in test_conn.listAllNetworks(0)]
    assert not [n for n in names if n.startswith(f"labctl-{lab.id}")]


def test_ensure_networks_updates_reservations_in_place(test_conn: Any) -> None:
    lab = golden_lab()
    network.ensure_networks(lab)
    try:
        extra = Machine("late", Kind.LXC, "debian-12", 1, 256 * 1024**2, networks=(Attachment("lan"),))
        dropped = tuple(m for m in lab.machines if m.name != "old")
        changed = Lab(lab.name, lab.file, lab.networks, (*dropped, extra))
        network.ensure_networks(changed)
        obj = test_conn.networkLookupByName(addressing.libvirt_network_name(lab, lab.network("lan")))
        hosts = {h.get("name") for h in ET.fromstring(obj.XMLDesc(0)).iterfind("ip/dhcp/host")}
        assert hosts == {"web", "box", "late"}
        dns = {n.text for n in ET.fromstring(obj.XMLDesc(0)).iterfind("dns/host/hostname")}
        assert "late" in dns and "old" not in dns
    finally:
        network.remove_networks(lab)


def test_refuses_a_same_named_network_of_someone_else(test_conn: Any) -> None:
    lab = golden_lab()
    name = addressing.libvirt_network_name(lab, lab.network("lan"))
    foreign = test_conn.networkDefineXML(
        f"<network><name>{name}</name><bridge name='foreignbr0'/>"
        "<ip address='10.213.7.1' prefix='24'/></network>"
    )
    try:
        with pytest.raises(HostError, match="not made by this lab"):
            network.ensure_networks(lab)
        network.remove_networks(lab)  # only removes what carries this lab's label
        assert test_conn.networkLookupByName(name).name() == name
    finally:
        foreign.undefine()


def addr(ifname: str, local: str, prefixlen: int) -> dict[str, Any]:
    return {"ifname": ifname, "addr_info": [{"family": "inet", "local": local, "prefixlen": prefixlen}]}


def test_collision_with_a_host_address_is_named() -> None:
    lab = golden_lab()
    problem = network.collision(lab, lab.network("lan"), [addr("eth7", "10.213.7.200", 24)], [])
    assert problem == "address 10.213.7.200/24 on host interface eth7"


def test_collision_with_a_host_route_is_named() -> None:
    lab = golden_lab()
    routes = [{"dst": "default", "dev": "eth0"}, {"dst": "10.213.0.0/16", "dev": "tun0"}]
    assert network.collision(lab, lab.network("lan"), [], routes) == "host route 10.213.0.0/16 dev tun0"


def test_own_bridge_and_unrelated_routes_are_not_collisions(monkeypatch: pytest.MonkeyPatch) -> None:
    lab = golden_lab()
    bridge = network.bridge_for(lab, "lan")
    monkeypatch.setattr(network, "_owns_bridge", lambda _lab, _net: True)
    addrs = [addr(bridge, "10.213.7.1", 24), addr("eth0", "192.0.2.2", 24)]
    routes = [{"dst": "10.213.7.0/24", "dev": bridge}, {"dst": "192.0.2.0/24", "dev": "eth0"}]
    assert network.collision(lab, lab.network("lan"), addrs, routes) is None


def test_a_foreign_interface_with_our_bridge_name_collides(monkeypatch: pytest.MonkeyPatch) -> None:
    lab = golden_lab()
    bridge = network.bridge_for(lab, "lan")
    monkeypatch.setattr(network, "_owns_bridge", lambda _lab, _net: False)
    problem = network.collision(lab, lab.network("lan"), [{"ifname": bridge, "addr_info": []}], [])
    assert problem == f"host interface {bridge}, which this lab did not create"


def test_check_collisions_raises_host_error(monkeypatch: pytest.MonkeyPatch) -> None:
    lab = golden_lab()

    class Result:
        def __init__(self, stdout: str) -> None:
            self.stdout = stdout

    outputs = {
        "addr": '[{"ifname": "eth9", "addr_info": [{"local": "10.213.8.9", "prefixlen": 24}]}]',
        "route": "[]",
    }
    monkeypatch.setattr(network, "run", lambda argv: Result(outputs[argv[3]]))
    with pytest.raises(HostError) as raised:
        network.check_collisions(lab)
    assert "wan (10.213.8.0/24" in raised.value.message
    assert "eth9" in raised.value.message
    assert raised.value.exit_code == 1


def test_check_collisions_reads_this_host() -> None:
    """Against the real `ip` output: a lab on a free subnet passes, one on the host's own fails."""
    import json
    import subprocess

    addrs = json.loads(subprocess.run(["ip", "-j", "-4", "addr"], capture_output=True, text=True).stdout)
    used = [
        ipaddress.ip_network(f"{a['local']}/{a['prefixlen']}", strict=False)
        for link in addrs
        for a in link.get("addr_info", [])
        if link["ifname"] != "lo"
    ]
    lab = golden_lab()
    free = next(
        net
        for third in range(256)
        if not any((net := ipaddress.IPv4Network(f"10.144.{third}.0/24")).overlaps(u) for u in used)
    )
    on_free = Lab(lab.name, lab.file, (Network("lan", free, NetworkMode.ISOLATED),), ())
    network.check_collisions(on_free)
    taken = ipaddress.IPv4Network(used[0].supernet(new_prefix=24) if used[0].prefixlen > 24 else used[0])
    clashing = Lab(lab.name, lab.file, (Network("lan", taken, NetworkMode.ISOLATED),), ())
    with pytest.raises(HostError, match="collides with"):
        network.check_collisions(clashing)
