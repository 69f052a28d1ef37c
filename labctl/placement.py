"""Which host each part of a lab lives on: this host, or a remote libvirt host over SSH.

Containers always run here. A VM runs where its libvirt URI points (`libvirt_uri:` on the lab or
the machine). A lab network is a bridge on one host, so it lives where its machines are; a network
joining machines of two hosts would be two unconnected segments with the same subnet, so it is
refused before anything is created.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable

from labctl.errors import HostError
from labctl.labfile.models import Kind, Lab, Machine, Network

LOCAL_URI = "qemu:///system"


def is_remote(uri: str) -> bool:
    """Whether uri names another host (any URI with a host part, even localhost over SSH)."""
    return bool(urllib.parse.urlsplit(uri).hostname)


def machine_uri(lab: Lab, machine: Machine) -> str:
    """The libvirt URI that holds the machine's host side (containers: this host)."""
    if machine.kind is Kind.VM:
        return lab.uri_for(machine)
    return local_uri(lab)


def local_uri(lab: Lab) -> str:
    """The libvirt URI of this host: the lab's own when it is local, else the system one."""
    return lab.libvirt_uri if not is_remote(lab.libvirt_uri) else LOCAL_URI


def _host_of(uri: str) -> str:
    return urllib.parse.urlsplit(uri).netloc if is_remote(uri) else ""


def _attached(machine: Machine, network: Network) -> bool:
    return any(a.network == network.name for a in machine.networks)


def network_uri(lab: Lab, network: Network) -> str:
    """Where the network's bridge lives: the host of its machines (the lab's default without any)."""
    uris = [machine_uri(lab, m) for m in lab.machines if _attached(m, network)]
    remote = [uri for uri in uris if is_remote(uri)]
    if remote:
        return remote[0]
    return local_uri(lab) if uris else lab.libvirt_uri


def check(lab: Lab) -> None:
    """Refuse a lab network whose machines are on different hosts."""
    for network in lab.networks:
        hosts: dict[str, list[str]] = {}
        for machine in lab.machines:
            if _attached(machine, network):
                hosts.setdefault(_host_of(machine_uri(lab, machine)), []).append(machine.name)
        if len(hosts) > 1:
            where = "; ".join(f"{host or 'this host'}: {', '.join(names)}" for host, names in hosts.items())
            raise HostError(
                f"network {network.name} joins machines on different hosts ({where}); a lab network is a bridge on one host",
                "put those machines on the same host, or give each host its own network",
            )


def uris(lab: Lab, extra: Iterable[str] = ()) -> list[str]:
    """Every libvirt URI the lab has objects on (its networks', its machines' and extra), this
    host's first. A lab that lives entirely on a remote host never needs a libvirtd here."""
    found = [network_uri(lab, n) for n in lab.networks] + [machine_uri(lab, m) for m in lab.machines]
    return sorted(set(found) | set(extra), key=lambda uri: (is_remote(uri), uri))
