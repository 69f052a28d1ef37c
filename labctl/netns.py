"""Network plumbing for containers: veth pairs on lab bridges, into a container's own netns.

runc makes the container's network namespace (so it belongs to the container's user namespace
when it has one: a netns owned by the host's user namespace cannot be entered from inside a new
one, which breaks `runc exec`). Between `runc create` and `runc start` labctl names that netns
(`ip netns attach`, /run/netns/<id>), moves a veth end into it and sets the address, so the
address is in place before the container's first process runs. Every step is idempotent: a
create killed half-way is finished by the next one, and destroy removes whatever exists.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from labctl.addressing import Lease
from labctl.drivers.overlay import is_mounted
from labctl.errors import DriverError
from labctl.paths import remove_file
from labctl.run import run

NETNS_DIR = Path("/run/netns")
# `ip netns add` makes /run/netns a shared mount on first use; two threads racing there stack it.
_netns_lock = threading.Lock()


@dataclass(frozen=True)
class Link:
    """One veth pair: `host` on `bridge`, `inside` in the container with the lease's address."""

    host: str
    inside: str
    bridge: str
    lease: Lease
    default_route: bool = False  # only through a NAT network, like VMs (labctl.seed.nic_plan)


def veth_name(owner: str, index: int, prefix: str = "lcv") -> str:
    """A host-side interface name ≤ 15 characters, stable per container and attachment."""
    digest = hashlib.sha256(owner.encode()).hexdigest()[:9]
    return f"{prefix}{digest}{index}"[:15]


def link_exists(name: str) -> bool:
    return (Path("/sys/class/net") / name).exists()


def require_bridge(bridge: str, network: str) -> None:
    if not link_exists(bridge):
        raise DriverError(
            f"the bridge {bridge} of lab network {network} does not exist",
            "create the lab's networks first (labctl up does it before any machine)",
        )


def netns_path(name: str) -> Path:
    return NETNS_DIR / name


def attach_netns(name: str, pid: int) -> Path:
    """Name the netns of process pid, replacing a name left by an earlier container."""
    path = netns_path(name)
    with _netns_lock:
        if path.exists() and is_mounted(path):
            run(["ip", "netns", "delete", name])
        remove_file(path, NETNS_DIR)  # a leftover file whose bind mount is gone
        run(["ip", "netns", "attach", name, str(pid)])
    return path


def delete_netns(name: str) -> None:
    path = netns_path(name)
    with _netns_lock:
        if path.exists() and is_mounted(path):
            run(["ip", "netns", "delete", name])
        remove_file(path, NETNS_DIR)


def plug(netns: str, links: Sequence[Link]) -> None:
    """(Re)create every veth pair and configure the inside end: address, up, default route."""
    host_lines = []
    for link in links:
        require_bridge(link.bridge, link.lease.network)
        if link_exists(link.host):
            run(["ip", "link", "delete", link.host])  # its peer may be gone or half-configured
        host_lines += [
            f"link add {link.host} type veth peer name {link.inside} netns {netns}",
            f"link set {link.host} master {link.bridge}",
            f"link set {link.host} up",
        ]
    if host_lines:
        run(["ip", "-batch", "-"], input="\n".join(host_lines) + "\n")
    run(["ip", "-n", netns, "-batch", "-"], input=_inside_script(links))


def _inside_script(links: Sequence[Link]) -> str:
    lines = ["link set lo up"]
    for link in links:
        lease = link.lease
        lines += [
            f"link set {link.inside} address {lease.mac}",
            f"addr replace {lease.ip}/{lease.prefixlen} dev {link.inside}",
            f"link set {link.inside} up",
        ]
    routed = [link for link in links if link.default_route]
    if routed:
        lines.append(f"route replace default via {routed[0].lease.gateway}")
    return "\n".join(lines) + "\n"


def unplug(links: Sequence[Link]) -> None:
    for link in links:
        if link_exists(link.host):
            run(["ip", "link", "delete", link.host], check=False)
