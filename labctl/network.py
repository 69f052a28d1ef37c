"""Lab networks, one implementation for every kind: a libvirt network per lab network.

Each is a Linux bridge (addressing.bridge_name) with the host on the gateway address and a
dnsmasq that reserves every machine's MAC/address pair and publishes every machine's name, so VMs,
LXC and namespace containers on it all resolve each other by name. `isolated` networks have no
route out; `nat` ones masquerade. Container drivers attach their veths to bridge_for(...).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labctl import addressing, templating
from labctl.errors import DriverError, HostError
from labctl.failpoints import failpoint
from labctl.labfile.models import Lab, Network, NetworkMode
from labctl.libvirt_util import connect, label_of, libvirt_errors, lookup_network
from labctl.run import run
from labctl.seed import dns_domain

_lock = threading.Lock()  # parallel creates may each ensure the lab's networks


@dataclass(frozen=True)
class HostEntry:
    mac: str
    name: str
    ip: str


def bridge_for(lab: Lab, network_name: str) -> str:
    """The bridge a container's veth joins to be on lab network network_name."""
    return addressing.bridge_name(lab, lab.network(network_name))


def hosts_of(lab: Lab, network: Network) -> list[HostEntry]:
    """Every machine of the lab on this network (all kinds), in labfile order."""
    plan = addressing.plan(lab)
    return [
        HostEntry(lease.mac, machine.name, str(lease.ip))
        for machine in lab.machines
        if (lease := plan.get((machine.name, network.name))) is not None
    ]


def fingerprint(lab: Lab, network: Network) -> str:
    """What cannot change on a live network (subnet, mode, bridge); hosts can, through update."""
    text = f"{network.cidr}|{network.mode.value}|{addressing.bridge_name(lab, network)}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def render_xml(lab: Lab, network: Network) -> str:
    return templating.render(
        "libvirt/network.xml.j2",
        name=addressing.libvirt_network_name(lab, network),
        lab_id=lab.id,
        network=network.name,
        bridge=addressing.bridge_name(lab, network),
        nat=network.mode is NetworkMode.NAT,
        gateway=str(network.gateway),
        netmask=str(network.cidr.netmask),
        domain=dns_domain(lab),
        fingerprint=fingerprint(lab, network),
        hosts=hosts_of(lab, network),
    )


# -- create, update, remove -------------------------------------------------------------------------


def public_subnet_warning(network: Network) -> str | None:
    """Valid, but worth a line: a public range is someone's real addresses, unreachable from
    this host's lab machines (and the host) while the lab network exists."""
    from labctl.labfile.values import is_public

    if not is_public(network.cidr):
        return None
    return (
        f"network {network.name} ({network.cidr}) is a public range: while the lab is up, this host "
        "reaches those addresses on the lab bridge, not on the internet; prefer 10.0.0.0/8, "
        "172.16.0.0/12 or 192.168.0.0/16"
    )


def ensure_networks(lab: Lab) -> None:
    """Create and start every network of the lab that is missing, each on the host of its
    machines (see placement); bring reservations up to date."""
    from labctl import console, placement

    for network in lab.networks:
        if (message := public_subnet_warning(network)) is not None:
            console.warn(message)
    with _lock:
        for network in lab.networks:
            _ensure_one(connect(placement.network_uri(lab, network)), lab, network)


def _ensure_one(conn: Any, lab: Lab, network: Network) -> None:
    name = addressing.libvirt_network_name(lab, network)
    existing = lookup_network(conn, name)
    if existing is not None:
        label = label_of(existing.XMLDesc(0))
        if label is None or label.lab_id != lab.id:
            raise HostError(
                f"libvirt network {name} exists but was not made by this lab",
                f"remove it with `virsh net-destroy {name}; virsh net-undefine {name}` if it is stale",
            )
        if _fingerprint_of(existing) != fingerprint(lab, network):
            _replace(lab, network, existing)
            existing = None
        else:
            _sync_hosts(existing, hosts_of(lab, network))
    if existing is None:
        with libvirt_errors(f"cannot define lab network {name}"):
            existing = conn.networkDefineXML(render_xml(lab, network))
        failpoint(f"network-{network.name}", "defined")
    with libvirt_errors(f"cannot start lab network {name}", "see `virsh net-start` for details"):
        if not existing.isActive():
            existing.create()
        existing.setAutostart(False)


def _fingerprint_of(net: Any) -> str | None:
    import xml.etree.ElementTree as ET

    from labctl.libvirt_util import NAMESPACE

    root = ET.fromstring(net.XMLDesc(0))  # noqa: S314 - from our libvirtd
    element = root.find(f"metadata/{{{NAMESPACE}}}lab")
    return None if element is None else element.get("fingerprint")


def _replace(lab: Lab, network: Network, net: Any) -> None:
    """Redefine a network whose subnet, mode or bridge changed; only when nothing is attached."""
    from labctl import placement

    bridge = addressing.bridge_name(lab, network)
    uri = net.connect().getURI()
    if placement.is_remote(uri):  # its bridge is not here to look at: count the lab's VMs there
        attached = _lab_domains(uri, lab) if net.isActive() else []
    else:
        attached = _bridge_ports(bridge) if net.isActive() else []
    if attached:
        raise DriverError(
            f"network {network.name} changed its subnet or mode while machines are attached ({', '.join(attached)})",
            "run `labctl destroy`, then `labctl up` to rebuild the lab with the new network",
        )
    _remove(net)


def _lab_domains(uri: str, lab: Lab) -> list[str]:
    from labctl.libvirt_util import lab_objects

    return lab_objects(uri, lab.id).domains


def _bridge_ports(bridge: str) -> list[str]:
    ports = Path("/sys/class/net") / bridge / "brif"
    return sorted(p.name for p in ports.iterdir()) if ports.is_dir() else []


def _remove(net: Any) -> None:
    name = net.name()
    with libvirt_errors(f"cannot remove lab network {name}"):
        if net.isActive():
            net.destroy()
        net.undefine()


def remove_networks(lab: Lab, extra_uris: Iterable[str] = ()) -> None:
    """Stop and undefine every network labelled with this lab's id (also ones no longer declared),
    on every host the lab uses."""
    from labctl import placement
    from labctl.libvirt_util import lab_objects

    with _lock:
        for uri in placement.uris(lab, extra_uris):
            conn = connect(uri)
            for name in lab_objects(uri, lab.id).networks:
                net = lookup_network(conn, name)
                if net is not None:
                    _remove(net)


# -- keeping reservations current -----------------------------------------------------------------


def _sync_hosts(net: Any, wanted: list[HostEntry]) -> None:
    """Make the network's DHCP reservations and DNS names match wanted, live and persistently."""
    import libvirt

    with libvirt_errors(f"cannot update the reservations of network {net.name()}"):
        current = _current_hosts(net.XMLDesc(0))
        if set(current) == set(wanted):
            return
        flags = libvirt.VIR_NETWORK_UPDATE_AFFECT_CONFIG
        if net.isActive():
            flags |= libvirt.VIR_NETWORK_UPDATE_AFFECT_LIVE
        stale = [h for h in current if h not in wanted]
        fresh = [h for h in wanted if h not in current]
        for host in stale:
            _update(net, libvirt.VIR_NETWORK_UPDATE_COMMAND_DELETE, host, flags)
        for host in fresh:
            _update(net, libvirt.VIR_NETWORK_UPDATE_COMMAND_ADD_LAST, host, flags)


def _update(net: Any, command: int, host: HostEntry, flags: int) -> None:
    import libvirt

    dhcp = templating.render("libvirt/network-dhcp-host.xml.j2", host=host)
    dns = templating.render("libvirt/network-dns-host.xml.j2", host=host, domain=_domain_of(net))
    net.update(command, libvirt.VIR_NETWORK_SECTION_IP_DHCP_HOST, -1, dhcp, flags)
    net.update(command, libvirt.VIR_NETWORK_SECTION_DNS_HOST, -1, dns, flags)


def _domain_of(net: Any) -> str:
    import xml.etree.ElementTree as ET

    element = ET.fromstring(net.XMLDesc(0)).find("domain")  # noqa: S314 - from our libvirtd
    return "" if element is None else element.get("name", "")


def _current_hosts(xml: str) -> list[HostEntry]:
    import xml.etree.ElementTree as ET

    root = ET.fromstring(xml)  # noqa: S314 - from our libvirtd
    return [
        HostEntry(h.get("mac", ""), h.get("name", ""), h.get("ip", "")) for h in root.iterfind("ip/dhcp/host")
    ]


# -- collisions with the host ---------------------------------------------------------------------


def check_collisions(lab: Lab) -> None:
    """Refuse a lab subnet or bridge that collides with a host interface or route not ours.

    Only networks on this host: a remote libvirtd refuses a colliding network itself.
    """
    from labctl import placement

    addrs = json.loads(run(["ip", "-j", "-4", "addr", "show"]).stdout or "[]")
    routes = json.loads(run(["ip", "-j", "-4", "route", "show"]).stdout or "[]")
    for network in lab.networks:
        if placement.is_remote(placement.network_uri(lab, network)):
            continue
        problem = collision(lab, network, addrs, routes)
        if problem:
            raise HostError(
                f"lab network {network.name} ({network.cidr}, bridge {addressing.bridge_name(lab, network)}) collides with {problem}",
                "choose another cidr for this network in the labfile (or remove the stale interface)",
            )


def collision(lab: Lab, network: Network, addrs: Iterable[Any], routes: Iterable[Any]) -> str | None:
    """What on the host (from `ip -j addr` / `ip -j route`) collides with network, or None."""
    bridge = addressing.bridge_name(lab, network)
    for link in addrs:
        name = link.get("ifname", "")
        if name == bridge and not _owns_bridge(lab, network):
            return f"host interface {name}, which this lab did not create"
        for info in link.get("addr_info", []):
            local = info.get("local")
            if name != bridge and local:
                subnet = ipaddress.ip_network(f"{local}/{info.get('prefixlen', 32)}", strict=False)
                if subnet.overlaps(network.cidr):
                    return f"address {local}/{info.get('prefixlen')} on host interface {name}"
    for route in routes:
        dst, dev = route.get("dst", ""), route.get("dev", "")
        if dst in ("", "default") or dev == bridge:
            continue
        if ipaddress.ip_network(dst, strict=False).overlaps(network.cidr):
            return f"host route {dst} dev {dev or '?'}"
    return None


def _owns_bridge(lab: Lab, network: Network) -> bool:
    """Whether the existing bridge belongs to this lab's libvirt network."""
    from labctl import placement

    try:
        conn = connect(placement.local_uri(lab))
    except HostError:
        return False
    net = lookup_network(conn, addressing.libvirt_network_name(lab, network))
    if net is None:
        return False
    label = label_of(net.XMLDesc(0))
    return label is not None and label.lab_id == lab.id
