"""The OCI bundle of a namespace container: config.json from templates/oci/ plus files it mounts.

Which mounts a container can have depends on its namespaces: a new user namespace may not mount
proc for the host's pid namespace, sysfs for a netns it does not own, or mqueue for the host's
ipc namespace, so those become read-only binds of the host's instead. Every listed namespace is
new and unnamed (runc makes it); every other one is the host's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from labctl import cgroups
from labctl.drivers import host_view
from labctl.drivers.host_view import HostView
from labctl.errors import DriverError
from labctl.idmap import Idmap
from labctl.labfile.models import Machine, Namespace
from labctl.templating import render

DEFAULT_COMMAND = ("sleep", "infinity")
# Docker's default set: enough for package tools, ping and daemons, not for host administration.
CAPABILITIES = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
]
OCI_NAMESPACE = {
    Namespace.PID: "pid",
    Namespace.NET: "network",
    Namespace.UTS: "uts",
    Namespace.IPC: "ipc",
    Namespace.MNT: "mount",
    Namespace.USER: "user",
    Namespace.CGROUP: "cgroup",
}


@dataclass(frozen=True)
class BundleSpec:
    container_id: str
    machine: Machine
    host_view: HostView | None  # what of the host a box-less machine sees; None with a box
    etc_dir: str  # holds hosts, hostname and resolv.conf for the container
    # With the user namespace: root's subordinate range (labctl.idmap), given so that the
    # rendering stays a pure function of the spec.
    idmap: Idmap | None = None


# runc's defaults: kernel interfaces no container needs to read.
MASKED_PROC = (
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
)


def config(spec: BundleSpec) -> dict[str, Any]:
    """The rendered config.json, parsed back so a template mistake fails here, not in runc."""
    text = render("oci/config.json.j2", **_context(spec))
    try:
        parsed: dict[str, Any] = json.loads(text)
    except ValueError as exc:
        raise DriverError(f"templates/oci/config.json.j2 rendered invalid JSON: {exc}") from exc
    return parsed


def _context(spec: BundleSpec) -> dict[str, Any]:
    machine = spec.machine
    spaces = machine.namespaces
    return {
        "args": list(machine.command or DEFAULT_COMMAND),
        "env": [
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME=/root",
            "TERM=xterm",
        ],
        "capabilities": CAPABILITIES,
        "readonly": spec.host_view is not None,
        "hostname": machine.name if Namespace.UTS in spaces else None,
        "mounts": mounts(spec),
        "annotations": {"org.labctl.machine": machine.name, "org.labctl.id": spec.container_id},
        **_id_mappings(spec),
        "cgroups_path": "/" + spec.container_id,
        "resources": cgroups.oci_resources(machine.cpus, machine.memory),
        "namespaces": namespaces(spec),
        "masked_paths": [*MASKED_PROC, *(spec.host_view.masked if spec.host_view else ())],
    }


def _id_mappings(spec: BundleSpec) -> dict[str, dict[str, int] | None]:
    if Namespace.USER not in spec.machine.namespaces:
        return {"uid_mapping": None, "gid_mapping": None}
    if spec.idmap is None:
        raise DriverError(f"{spec.machine.name} has a user namespace but no id range to map it to")
    ids = spec.idmap
    return {
        "uid_mapping": {"containerID": 0, "hostID": ids.uid, "size": ids.size},
        "gid_mapping": {"containerID": 0, "hostID": ids.gid, "size": ids.size},
    }


def namespaces(spec: BundleSpec) -> list[dict[str, str]]:
    entries = []
    for space in sorted(spec.machine.namespaces, key=list(OCI_NAMESPACE).index):
        entries.append({"type": OCI_NAMESPACE[space]})
    return entries


def _bind(source: str, destination: str, *extra: str) -> dict[str, Any]:
    return {"destination": destination, "type": "bind", "source": source, "options": ["rbind", *extra]}


def mounts(spec: BundleSpec) -> list[dict[str, Any]]:
    spaces = spec.machine.namespaces
    user = Namespace.USER in spaces
    result: list[dict[str, Any]] = []
    if user and Namespace.PID not in spaces:
        result.append(_bind("/proc", "/proc", "nosuid", "nodev", "noexec"))
    else:
        result.append({"destination": "/proc", "type": "proc", "source": "proc"})
    result += [
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"],
        },
        {
            "destination": "/dev/shm",
            "type": "tmpfs",
            "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        },
        {
            "destination": "/tmp",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "nodev", "mode=1777"],
        },
    ]
    if Namespace.IPC in spaces:
        result.append(
            {
                "destination": "/dev/mqueue",
                "type": "mqueue",
                "source": "mqueue",
                "options": ["nosuid", "noexec", "nodev"],
            }
        )
    if user and Namespace.NET not in spaces:
        result.append(_bind("/sys", "/sys", "nosuid", "noexec", "nodev", "ro"))
    else:
        result.append(
            {
                "destination": "/sys",
                "type": "sysfs",
                "source": "sysfs",
                "options": ["nosuid", "noexec", "nodev", "ro"],
            }
        )
    if spec.host_view is not None:
        result += host_view.mounts()
    result += _etc_binds(spec)
    return result


def _etc_binds(spec: BundleSpec) -> list[dict[str, Any]]:
    """The container's own name and resolver; without `net`/`uts` it keeps the host's."""
    spaces = spec.machine.namespaces
    binds = []
    if Namespace.UTS in spaces:
        binds.append(_bind(f"{spec.etc_dir}/hostname", "/etc/hostname", "ro"))
    if Namespace.NET in spaces:
        binds.append(_bind(f"{spec.etc_dir}/hosts", "/etc/hosts", "ro"))
        binds.append(_bind(f"{spec.etc_dir}/resolv.conf", "/etc/resolv.conf", "ro"))
    return binds
