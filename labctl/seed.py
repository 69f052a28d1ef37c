"""The cloud-init NoCloud seed of a VM: an ISO 9660 image labelled `cidata`.

It carries the hostname, the lab's SSH public key for root, the machine's own SSH host key (made
by labctl, so it is in .labctl/known_hosts before the first connection) and static addresses from
the address plan, each NIC matched by MAC, with the lab network's dnsmasq as DNS server.
"""

from __future__ import annotations

import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labctl import addressing, templating
from labctl.labfile.models import Lab, Machine, NetworkMode
from labctl.run import run

VOLUME_LABEL = "cidata"  # what cloud-init's NoCloud datasource looks for


@dataclass(frozen=True)
class SeedKeys:
    authorized_key: str  # the lab's public key, one line
    host_private: str  # the machine's host key, OpenSSH private key text
    host_public: str


def dns_domain(lab: Lab) -> str:
    """The search domain of a lab's networks: machine names resolve as NAME and NAME.<lab>.lab."""
    return f"{lab.name}.lab"


def nic_plan(lab: Lab, machine: Machine) -> list[dict[str, Any]]:
    """One entry per NIC: MAC, address/prefix, gateway, and whether the default route uses it.

    The default route goes out of the first NAT network, so an isolated network never gets one.
    """
    nics: list[dict[str, Any]] = []
    routed = False
    for lease in addressing.leases_of(lab, machine):
        nat = lab.network(lease.network).mode is NetworkMode.NAT
        nics.append(
            {
                "mac": lease.mac,
                "address": f"{lease.ip}/{lease.prefixlen}",
                "gateway": str(lease.gateway),
                "default_route": nat and not routed,
            }
        )
        routed = routed or nat
    return nics


def resolv_conf(nics: list[dict[str, Any]], domain: str) -> str:
    servers = dict.fromkeys(nic["gateway"] for nic in nics)  # ordered, without repeats
    return "".join(f"nameserver {server}\n" for server in servers) + f"search {domain}\n"


def render(lab: Lab, machine: Machine, keys: SeedKeys, instance_id: str | None = None) -> dict[str, str]:
    """The seed's files by name: user-data, meta-data and network-config."""
    domain = dns_domain(lab)
    nics = nic_plan(lab, machine)
    return {
        "user-data": templating.render(
            "cloud-init/user-data.j2",
            hostname=machine.name,
            fqdn=f"{machine.name}.{domain}",
            authorized_key=keys.authorized_key,
            host_private=keys.host_private,
            host_public=keys.host_public,
            resolv_conf=resolv_conf(nics, domain),
        ),
        "meta-data": templating.render(
            "cloud-init/meta-data.j2",
            instance_id=instance_id or f"labctl-{uuid.uuid4()}",
            hostname=machine.name,
        ),
        "network-config": templating.render("cloud-init/network-config.j2", nics=nics, domain=domain),
    }


def build(files: dict[str, str], iso: Path) -> None:
    """Write the files into an ISO at iso (mode 0600: it holds the machine's private host key)."""
    with tempfile.TemporaryDirectory(prefix=".seed-", dir=iso.parent) as temp:
        staging = Path(temp)
        for name, text in files.items():
            (staging / name).write_text(text)
        partial = iso.with_name(iso.name + ".part")
        argv: list[str | Path] = ["genisoimage", "-quiet", "-output", partial, "-volid", VOLUME_LABEL]
        run([*argv, "-joliet", "-rock", *(staging / name for name in files)])
        partial.chmod(0o600)
        partial.replace(iso)
