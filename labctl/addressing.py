"""Every machine's MAC and address on every lab network, decided from the labfile alone.

Addresses are fixed before anything is created: static ones as written, the others handed out in
the order machines are declared, from .10 upwards. The libvirt network reserves each MAC/address
pair in its DHCP server and publishes every name in its DNS, so all kinds resolve each other by
name, whether they use DHCP (VMs, LXC) or configure the address directly (ns containers).
"""

from __future__ import annotations

import hashlib
import ipaddress
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from labctl.errors import HostError, LabctlError
from labctl.labfile.models import Lab, Machine, Network

FIRST_DYNAMIC = 10


@dataclass(frozen=True)
class Lease:
    machine: str
    network: str
    ip: ipaddress.IPv4Address
    mac: str
    prefixlen: int
    gateway: ipaddress.IPv4Address


def mac_address(lab_id: str, machine: str, network: str) -> str:
    """A stable locally administered MAC in QEMU's 52:54:00 range."""
    digest = hashlib.sha256(f"{lab_id}/{machine}/{network}".encode()).digest()
    return "52:54:00:" + ":".join(f"{b:02x}" for b in digest[:3])


def plan(lab: Lab) -> dict[tuple[str, str], Lease]:
    """(machine, network) -> Lease for every attachment in the lab."""
    leases: dict[tuple[str, str], Lease] = {}
    for network in lab.networks:
        for machine, ip in _assign(lab, network):
            if ip is None:
                raise LabctlError(
                    f"network {network.name} ({network.cidr}) has no free address for {machine.name}"
                )
            leases[(machine.name, network.name)] = Lease(
                machine.name,
                network.name,
                ip,
                mac_address(lab.id, machine.name, network.name),
                network.cidr.prefixlen,
                network.gateway,
            )
    return leases


def unplaced(lab: Lab) -> dict[str, list[str]]:
    """network name -> the machines it has no address left for (validate reports these)."""
    short: dict[str, list[str]] = {}
    for network in lab.networks:
        for machine, ip in _assign(lab, network):
            if ip is None:
                short.setdefault(network.name, []).append(machine.name)
    return short


def capacity(network: Network) -> int:
    """How many addresses the network hands out to machines that name none."""
    first, last = _dynamic_range(network)
    return max(0, last - first + 1 - (first <= int(network.gateway) <= last))


def _assign(lab: Lab, network: Network) -> Iterator[tuple[Machine, ipaddress.IPv4Address | None]]:
    """Each machine on network with its address, None once the pool is spent."""
    taken = {a.ip for m in lab.machines for a in m.networks if a.network == network.name and a.ip}
    pool = _pool(network, taken)
    for machine in lab.machines:
        for attachment in machine.networks:
            if attachment.network == network.name:
                yield machine, attachment.ip or next(pool, None)


def leases_of(lab: Lab, machine: Machine) -> list[Lease]:
    all_leases = plan(lab)
    return [all_leases[(machine.name, a.network)] for a in machine.networks]


def _dynamic_range(network: Network) -> tuple[int, int]:
    """First and last address (as integers) handed out: from .10 up, or all hosts of a tiny net."""
    first_host = int(network.cidr.network_address) + 1
    last_host = int(network.cidr.broadcast_address) - 1
    hosts = last_host - first_host + 1
    start = FIRST_DYNAMIC if hosts > FIRST_DYNAMIC + 4 else 1
    return first_host + start, last_host


def _pool(network: Network, taken: set[ipaddress.IPv4Address]) -> Iterator[ipaddress.IPv4Address]:
    # Counted, never listed: a /8 has 16 million hosts and a lab needs a few of them.
    first, last = _dynamic_range(network)
    for value in range(first, last + 1):
        ip = ipaddress.IPv4Address(value)
        if ip not in taken and ip != network.gateway:
            yield ip


def bridge_name(lab: Lab, network: Network) -> str:
    """lcbr + 11 hex digits: 15 characters, the kernel's limit (IFNAMSIZ - 1), and 44 bits, so
    labs do not collide by chance; network.collision refuses a clash with an existing interface.
    A lab with a short legacy id keeps the 8 digits its live bridges were made with."""
    digits = 8 if lab.legacy_id else 11
    digest = hashlib.sha256(f"{lab.id}/{network.name}".encode()).hexdigest()[:digits]
    return f"lcbr{digest}"


def libvirt_network_name(lab: Lab, network: Network) -> str:
    return f"labctl-{lab.id}-{network.name}"


def free_subnet(
    routes: Sequence[str], pool: str = "10.213.128.0/17", prefix: int = 24, rng: random.Random | None = None
) -> str:
    """A random subnet of pool that overlaps none of routes (the host's: ip -4 route, all tables).

    Throw-away labs (bench --compare, tests, benchmarks) take one, so no lab bridge and no uplink
    of the host is ever shadowed.
    """
    taken = [ipaddress.IPv4Network(r, strict=False) for r in routes]
    candidates = list(ipaddress.IPv4Network(pool).subnets(new_prefix=prefix))
    (rng or random.Random()).shuffle(candidates)  # noqa: S311 - spreading labs, not secrecy
    for subnet in candidates:
        if not any(subnet.overlaps(t) for t in taken):
            return str(subnet)
    raise HostError(f"no free /{prefix} in {pool} for a lab", "remove stale labs: labctl destroy")
