"""From a loaded Document to a Lab, collecting every problem instead of stopping at the first."""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
from pathlib import Path
from typing import Any

from labctl.errors import LabfileError
from labctl.labfile import values
from labctl.labfile.checker import Checker, check_uri, choices
from labctl.labfile.loader import Document, Key, kind_of
from labctl.labfile.machines import ALL_MACHINE_KEYS, MachineBuilder
from labctl.labfile.models import (
    Check,
    Kind,
    Lab,
    Machine,
    Network,
    NetworkMode,
)

LAB_KEYS = ["name", "defaults", "networks", "machines", "libvirt_uri", "checks"]
NETWORK_KEYS = ["cidr", "mode"]
DEFAULT_NETWORK = "lab"
RESOLV_CONF = Path("/etc/resolv.conf")


def build_lab(document: Document, labfile: Path) -> Lab:
    """Validate the document; raise LabfileError listing every problem, or return the Lab."""
    checker = Checker(document)
    checker.problems.extend(document.problems)
    top = checker.mapping((), document.data, LAB_KEYS, "lab settings")
    name = _lab_name(checker, top, labfile)
    uri = check_uri(checker, ("libvirt_uri",), top.get("libvirt_uri", "qemu:///system")) or "qemu:///system"
    networks = _networks(checker, top.get("networks"), name, labfile)
    defaults = checker.mapping(("defaults",), top.get("defaults", {}), ALL_MACHINE_KEYS, "machine settings")
    machines = _machines(checker, top, defaults, networks, labfile.parent)
    checks = _checks(checker, top, machines)
    lab = Lab(
        name=name,
        file=labfile,
        networks=tuple(networks),
        machines=tuple(machines),
        libvirt_uri=uri,
        checks=tuple(checks),
    )
    if not checker.problems:
        _check_buildable(checker, lab)
    if checker.problems:
        raise LabfileError(sorted(checker.problems, key=lambda p: (p.line, p.column)))
    return lab


def _check_buildable(checker: Checker, lab: Lab) -> None:
    """What each part allows on its own but `up` could not build together."""
    from labctl import addressing
    from labctl.drivers.containers import MAX_NAME

    names = {m.name for m in lab.machines}
    for machine in lab.machines:
        path: Key = ("machines", machine.name)
        container = f"labctl-{lab.id}-{machine.name}"
        if machine.kind is not Kind.VM and len(container) > MAX_NAME:
            over = len(container) - MAX_NAME
            checker.error(
                path,
                f"too long for an {machine.kind.value} machine of lab {lab.name!r}: its container "
                f"name labctl-<lab id>-{machine.name} would have {len(container)} characters, "
                f"{MAX_NAME} at most; shorten the machine or the lab name by {over}",
                key=True,
            )
        for group in machine.groups:
            if group in names:
                checker.error(
                    (*path, "groups"),
                    f"group {group!r} has the name of a machine; Ansible would read both as one",
                )
    for network_name, unplaced in addressing.unplaced(lab).items():
        network = lab.network(network_name)
        where: Key = ("networks", network_name, "cidr") if network.declared else ("machines", unplaced[0])
        checker.error(
            where,
            f"{network.cidr} has no free address for {', '.join(unplaced)}: "
            f"{addressing.capacity(network)} machines fit; use a larger network (a shorter prefix)",
        )


def _lab_name(checker: Checker, top: dict[str, Any], labfile: Path) -> str:
    if "name" in top:
        return checker.parse(("name",), top["name"], lambda v: values.name(v, "lab name", 40)) or "lab"
    return values.default_lab_name(labfile.parent.name)


def _networks(checker: Checker, raw: Any, lab_name: str, labfile: Path) -> list[Network]:
    if raw is None:
        return [
            Network(DEFAULT_NETWORK, _default_cidr(lab_name, labfile), NetworkMode.ISOLATED, declared=False)
        ]
    declared = checker.mapping(("networks",), raw, list(raw) if isinstance(raw, dict) else [], "networks")
    if isinstance(raw, dict) and not raw:
        checker.error(("networks",), "declare at least one network, or leave 'networks' out")
    result: list[Network] = []
    for net_name, spec in declared.items():
        network = _network(checker, ("networks", net_name), net_name, spec)
        if network is None:
            continue
        for other in result:
            if network.cidr.overlaps(other.cidr):
                checker.error(
                    ("networks", net_name, "cidr"),
                    f"{network.cidr} overlaps network {other.name!r} ({other.cidr})",
                )
        result.append(network)
    return result


def _network(checker: Checker, path: Key, net_name: str, spec: Any) -> Network | None:
    valid_name = checker.parse(path, net_name, lambda v: values.name(v, "network name", 15))
    fields = checker.mapping(path, spec, NETWORK_KEYS, "network settings (cidr, mode)")
    if "cidr" not in fields:
        if isinstance(spec, dict):
            checker.error(path, "missing key 'cidr' (for example cidr: 10.213.7.0/24)", key=True)
        return None
    cidr = checker.parse((*path, "cidr"), fields["cidr"], values.cidr)
    mode_text = checker.parse(
        (*path, "mode"), fields.get("mode", "isolated"), lambda v: values.choice(v, choices(NetworkMode))
    )
    if cidr is not None and (problem := _subnet_problem(cidr)) is not None:
        checker.error((*path, "cidr"), problem)
        cidr = None
    if valid_name is None or cidr is None or mode_text is None:
        return None
    return Network(valid_name, cidr, NetworkMode(mode_text))


def _subnet_problem(cidr: ipaddress.IPv4Network) -> str | None:
    problem = values.subnet_problem(cidr)
    if problem is not None:
        return problem
    for resolver in host_resolvers():
        if resolver in cidr:
            return (
                f"{cidr} holds {resolver}, a name server of this host (/etc/resolv.conf): the lab's "
                "bridge would take the host's route to it; choose another range"
            )
    return None


def host_resolvers(path: Path | None = None) -> list[ipaddress.IPv4Address]:
    """The IPv4 name servers this host uses; none when the file cannot be read."""
    try:
        text = (path or RESOLV_CONF).read_text(errors="replace")[:65536]
    except OSError:
        return []
    found = []
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "nameserver":
            with contextlib.suppress(ValueError):
                found.append(ipaddress.IPv4Address(words[1]))
    return found


def _default_cidr(lab_name: str, labfile: Path) -> ipaddress.IPv4Network:
    """A stable /24 per labfile location in 10.200.0.0-10.249.255.0, for labs that declare no network."""
    digest = hashlib.sha256(str(labfile.parent).encode()).digest()
    return ipaddress.IPv4Network(f"10.{200 + digest[0] % 50}.{digest[1]}.0/24")


def _machines(
    checker: Checker, top: dict[str, Any], defaults: dict[str, Any], networks: list[Network], root: Path
) -> list[Machine]:
    raw = top.get("machines")
    if raw is None:
        checker.error((), "missing key 'machines': declare at least one machine", key=True)
        return []
    if not isinstance(raw, dict) or not raw:
        checker.error(("machines",), f"expected a mapping of machine names to settings, got {kind_of(raw)}")
        return []
    declared = set(top["networks"]) if isinstance(top.get("networks"), dict) else set()
    builder = MachineBuilder(checker, defaults, networks, root, declared)
    machines = [m for m in (builder.build(name, spec) for name, spec in raw.items()) if m is not None]
    _check_static_ips(checker, machines, networks)
    return machines


def _checks(checker: Checker, top: dict[str, Any], machines: list[Machine]) -> list[Check]:
    from labctl.labfile.checks import ChecksBuilder

    declared = set(top["machines"]) if isinstance(top.get("machines"), dict) else set()
    return ChecksBuilder(checker, machines, declared).build(top.get("checks"))


def _check_static_ips(checker: Checker, machines: list[Machine], networks: list[Network]) -> None:
    by_name = {n.name: n for n in networks}
    seen: dict[tuple[str, ipaddress.IPv4Address], str] = {}
    for machine in machines:
        for index, attachment in enumerate(machine.networks):
            if attachment.ip is None or attachment.network not in by_name:
                continue
            path: Key = ("machines", machine.name, "networks", index, "ip")
            problem = _ip_problem(attachment.ip, by_name[attachment.network])
            owner = seen.setdefault((attachment.network, attachment.ip), machine.name)
            if problem is None and owner != machine.name:
                problem = f"{attachment.ip} is already given to machine {owner!r}"
            if problem:
                checker.error(path, problem)


def _ip_problem(ip: ipaddress.IPv4Address, network: Network) -> str | None:
    if ip not in network.cidr:
        return f"{ip} is outside network {network.name!r} ({network.cidr})"
    if ip == network.cidr.network_address:
        return f"{ip} is the network address of {network.cidr}"
    if ip == network.cidr.broadcast_address:
        return f"{ip} is the broadcast address of {network.cidr}"
    if ip == network.gateway:
        return f"{ip} is the gateway of {network.cidr} (the host's address on the lab network)"
    return None
