"""The Ansible inventory of a lab, built from the lab model (not from a scan of what runs).

Every machine is a host. Groups: one per kind (vm, lxc, ns) and one per name in a machine's
`groups:`. Machines with sshd are reached with Ansible's ssh connection, the lab key and the lab's
known_hosts with StrictHostKeyChecking=yes; namespace containers with labctl's `labctl_runc`
connection plugin, which needs ANSIBLE_CONNECTION_PLUGINS=<plugin_dir()> (see docs/provisioning.md).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labctl import addressing
from labctl.labfile.models import Kind, Machine

if TYPE_CHECKING:
    from labctl.drivers import Driver, LabContext

Inventory = dict[str, Any]
PLUGIN_NAME = "labctl_runc"


def plugin_dir() -> Path:
    """The directory holding labctl's Ansible connection plugin."""
    from labctl import ansible_plugins

    return Path(ansible_plugins.__file__).resolve().parent / "connection"


def ssh_common_args(known_hosts: Path, alias: str, extra: list[str] | None = None) -> str:
    """OpenSSH options (split by Ansible with shlex): the lab's known_hosts, never trust on first use."""
    return shlex.join(
        [
            *(extra or []),
            "-o",
            f"UserKnownHostsFile={known_hosts.resolve()}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            f"HostKeyAlias={alias}",
        ]
    )


def host_key_alias(host: str, port: int) -> str:
    """The name the machine's key is recorded under in known_hosts (see keys.known_hosts_line)."""
    return host if port == 22 else f"[{host}]:{port}"


def host_vars(context: LabContext, driver: Driver, machine: Machine) -> dict[str, Any]:
    hostvars: dict[str, Any] = {"labctl_kind": machine.kind.value}
    leases = addressing.leases_of(context.lab, machine)
    if leases:
        hostvars["labctl_address"] = str(leases[0].ip)
    target = driver.ssh_target(machine)
    if target is not None:
        hostvars.update(
            ansible_host=target.host,
            ansible_port=target.port,
            ansible_user=target.user,
            ansible_ssh_private_key_file=str(target.key.resolve()),
            ansible_ssh_common_args=ssh_common_args(
                context.known_hosts, host_key_alias(target.host, target.port), target.proxy_options()
            ),
        )
    elif machine.kind is Kind.NS:
        hostvars.update(runtime_vars(driver, machine))
    return hostvars


def runtime_vars(driver: Driver, machine: Machine) -> dict[str, Any]:
    """What the labctl_runc plugin needs: the runtime, its --root and the container's id."""
    from labctl.drivers.ns import NsDriver, runtime_name

    if not isinstance(driver, NsDriver):
        return {}
    return {
        "ansible_connection": PLUGIN_NAME,
        "ansible_pipelining": True,  # modules go through stdin: one runc exec per task, no temp file
        "ansible_user": "root",
        "labctl_runtime": runtime_name(),
        "labctl_runtime_root": str(driver.runtime.state_dir),
        "labctl_container": driver.container(machine),
    }


def build(context: LabContext, driver: Callable[[Kind], Driver]) -> Inventory:
    """The inventory as Ansible's YAML inventory structure (a dict)."""
    lab = context.lab
    hosts = {m.name: host_vars(context, driver(m.kind), m) for m in lab.machines}
    groups: dict[str, list[str]] = {}
    for machine in lab.machines:
        for group in (machine.kind.value, *machine.groups):
            groups.setdefault(group, []).append(machine.name)
    children = {name: {"hosts": dict.fromkeys(members, None)} for name, members in groups.items()}
    return {
        "all": {
            "vars": {"ansible_python_interpreter": "auto_silent", "labctl_lab": lab.name},
            "hosts": hosts,
            "children": children,
        }
    }


def to_yaml(inventory: Inventory) -> str:
    import yaml

    return str(yaml.safe_dump(inventory, sort_keys=False, default_flow_style=False))


def to_ini(inventory: Inventory) -> str:
    """The same inventory in INI form; every value is shell-quoted, which Ansible's INI parser reads."""
    top = inventory["all"]
    lines = ["[all]"]
    for name, hostvars in top["hosts"].items():
        pairs = " ".join(f"{key}={shlex.quote(str(value))}" for key, value in hostvars.items())
        lines.append(f"{name} {pairs}".rstrip())
    lines += ["", "[all:vars]", *(f"{k}={shlex.quote(str(v))}" for k, v in top["vars"].items())]
    for group, body in top["children"].items():
        lines += ["", f"[{group}]", *body["hosts"]]
    return "\n".join(lines) + "\n"


def write(path: Path, inventory: Inventory) -> None:
    from labctl.state import atomic_write

    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    atomic_write(path, to_yaml(inventory).encode(), 0o600)
