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

from labctl import console
from labctl.addressing import Lease
from labctl.drivers.overlay import is_mounted
from labctl.errors import DriverError
from labctl.paths import remove_file
from labctl.run import run

NETNS_DIR = Path("/run/netns")
SYS_NET = Path("/sys/class/net")
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
    return (SYS_NET / name).exists()


def master_of(name: str) -> str | None:
    """The bridge interface name is a port of, or None."""
    master = SYS_NET / name / "master"
    return master.resolve().name if master.is_symlink() else None


def foreign(name: str, bridge: str) -> str | None:
    """The bridge of another lab that an existing interface of this name is on, or None.

    veth names are a short hash of the container name (36 bits, to fit 15 characters): a clash
    with another lab's veth is unlikely but possible, and must never delete that lab's link.
    """
    owner = master_of(name) if link_exists(name) else None
    return owner if owner not in (None, bridge) else None


def delete_link(name: str, bridge: str) -> None:
    """Delete a host-side veth of ours (on bridge, or on none); leave another lab's alone."""
    if (owner := foreign(name, bridge)) is not None:
        console.warn(f"host interface {name} is on bridge {owner}, not this lab's {bridge}; left alone")
    elif link_exists(name):
        run(["ip", "link", "delete", name], check=False)


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
        if (owner := foreign(link.host, link.bridge)) is not None:
            raise DriverError(
                f"host interface {link.host} exists on bridge {owner}, not on this lab's {link.bridge}: "
                "another lab's veth has the name this machine's would get",
                "labctl leaves it alone; rename this machine (veth names are a hash of the container name)",
            )
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
        delete_link(link.host, link.bridge)
