"""libvirt at labctl's boundary: connections, error mapping, and the labels on labctl's objects.

Every domain and network labctl defines carries a `<labctl:lab id=... />` element in its
<metadata>, so labctl finds its own objects by lab id even when .labctl/ is lost, and never
touches anything it did not create. libvirt-python is imported lazily: `labctl --help` and the
container kinds never load it.
"""

from __future__ import annotations

import contextlib
import re
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from labctl.errors import DriverError, HostError

NAMESPACE = "https://labctl.invalid/xmlns/1"
PREFIX = "labctl"
NAME_PREFIX = "labctl-"
_NETWORK_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?")  # a labfile network name

# libvirt features that depend on its version, in one table (virtinst's support.py idea):
# name -> (first libvirt version as (major, minor, micro), why labctl cares).
SUPPORT: dict[str, tuple[tuple[int, int, int], str]] = {
    "network_metadata": ((9, 0, 0), "<metadata> in network XML labels lab networks"),
    "domain_cpu_maximum": ((7, 1, 0), "<cpu mode='maximum'> for TCG guests"),
}

_local = threading.local()
_handler_lock = threading.Lock()
_handler_installed = False


def supports(conn: Any, feature: str) -> bool:
    """Whether the libvirt behind conn has a feature of the SUPPORT table."""
    wanted, _why = SUPPORT[feature]
    version = int(conn.getLibVersion())
    have = (version // 1_000_000, version // 1000 % 1000, version % 1000)
    return have >= wanted


def _quiet_libvirt(libvirt: Any) -> None:
    """libvirt prints every error to stderr by default; labctl reports them itself."""
    global _handler_installed
    with _handler_lock:
        if not _handler_installed:
            libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
            _handler_installed = True


def connect(uri: str) -> Any:
    """A libvirt connection to uri, one per thread (parallel creates never share one)."""
    import libvirt

    from labctl import libvirt_uri

    refused = libvirt_uri.problem(uri)
    if refused is not None:
        # Every connection passes here, whoever gave the URI (labfile, state, command line).
        raise HostError(f"libvirt URI {uri!r} refused: {refused}", f"use {libvirt_uri.EXAMPLE}")
    _quiet_libvirt(libvirt)
    cache: dict[str, Any] = _local.__dict__.setdefault("connections", {})
    conn = cache.get(uri)
    if conn is not None:
        # isAlive() only looks at the client's side. libvirtd drops a connection whose keepalive
        # pings went unanswered (nothing reads the socket between calls), e.g. the main thread's
        # while workers create VMs; a cheap call tells, and a dead one is replaced.
        try:
            conn.getLibVersion()
            return conn
        except libvirt.libvirtError:
            with contextlib.suppress(libvirt.libvirtError):
                conn.close()
    try:
        conn = libvirt.open(uri)
    except libvirt.libvirtError as exc:
        raise HostError(
            f"cannot connect to libvirt at {uri}: {exc.get_error_message()}", connect_hint(uri)
        ) from exc
    cache[uri] = conn
    return conn


def connect_hint(uri: str) -> str:
    """What to do when uri does not answer: start libvirtd here, or fix the way to the remote host."""
    from labctl.placement import is_remote

    if is_remote(uri):
        return f"check that `virsh -c '{uri}' version` works: key login over SSH, the host key in ~/.ssh/known_hosts, libvirtd running there"
    return "start libvirtd (scripts/setup-host does it), or check libvirt_uri in the labfile"


@contextlib.contextmanager
def libvirt_errors(what: str, hint: str | None = None) -> Iterator[None]:
    """Turn a libvirtError raised inside the block into a DriverError saying what failed."""
    import libvirt

    try:
        yield
    except libvirt.libvirtError as exc:
        raise DriverError(f"{what}: {exc.get_error_message()}", hint) from exc


def is_missing(exc: BaseException) -> bool:
    """Whether a libvirtError means 'no such domain/network/snapshot'."""
    import libvirt

    codes = {
        libvirt.VIR_ERR_NO_DOMAIN,
        libvirt.VIR_ERR_NO_NETWORK,
        libvirt.VIR_ERR_NO_DOMAIN_SNAPSHOT,
    }
    return isinstance(exc, libvirt.libvirtError) and exc.get_error_code() in codes


def lookup_domain(conn: Any, name: str) -> Any | None:
    import libvirt

    try:
        return conn.lookupByName(name)
    except libvirt.libvirtError as exc:
        if is_missing(exc):
            return None
        raise DriverError(f"cannot look up domain {name}: {exc.get_error_message()}") from exc


def lookup_network(conn: Any, name: str) -> Any | None:
    import libvirt

    try:
        return conn.networkLookupByName(name)
    except libvirt.libvirtError as exc:
        if is_missing(exc):
            return None
        raise DriverError(f"cannot look up network {name}: {exc.get_error_message()}") from exc


# -- labels ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Label:
    """What labctl wrote into an object's <metadata>: its lab id and, for domains, the machine."""

    lab_id: str
    machine: str | None = None
    network: str | None = None


def label_of(xml: str) -> Label | None:
    """The labctl label in a domain or network XML, or None for objects labctl did not make."""
    try:
        root = ET.fromstring(xml)  # noqa: S314 - XML from our own libvirtd, not from a user
    except ET.ParseError:
        return None
    element = root.find(f"metadata/{{{NAMESPACE}}}lab")
    if element is None or not element.get("id"):
        return None
    return Label(element.get("id", ""), element.get("machine"), element.get("network"))


def owned_by(obj: Any, lab_id: str) -> bool:
    """Whether a libvirt domain or network carries this lab's label.

    An object that vanishes between listing and reading (another lab destroying its machines at
    the same time) is not ours.
    """
    import libvirt

    try:
        xml = obj.XMLDesc(0)
    except libvirt.libvirtError as exc:
        if is_missing(exc):
            return False
        raise
    label = label_of(xml)
    return label is not None and label.lab_id == lab_id


@dataclass(frozen=True)
class LabObjects:
    domains: list[str]
    networks: list[str]


def lab_objects(uri: str, lab_id: str) -> LabObjects:
    """Every libvirt domain and network labelled with lab_id, active or not.

    Networks on a libvirt too old for network metadata are matched by their name prefix, which
    holds the lab id (labctl-<lab id>-<network>).
    """
    conn = connect(uri)
    with libvirt_errors(f"cannot list the objects of lab {lab_id} at {uri}"):
        domains = [d.name() for d in conn.listAllDomains(0) if owned_by(d, lab_id)]
        by_metadata = supports(conn, "network_metadata")
        networks = [
            n.name()
            for n in conn.listAllNetworks(0)
            if (owned_by(n, lab_id) if by_metadata else network_named_for(n.name(), lab_id))
        ]
    return LabObjects(sorted(domains), sorted(networks))


def network_named_for(name: str, lab_id: str) -> bool:
    """Whether name is labctl-<lab id>-<network name>. The rest after the id must be a network
    name, else lab 'a' would claim the networks of a lab named 'a-<hex>-b'; with 12-digit ids
    that rest ('b-<12 hex>-<network>') is always longer than a network name may be."""
    prefix = f"{NAME_PREFIX}{lab_id}-"
    return name.startswith(prefix) and _NETWORK_NAME.fullmatch(name[len(prefix) :]) is not None
