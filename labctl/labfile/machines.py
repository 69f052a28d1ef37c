"""One machine's settings, checked with the lab-wide defaults filled in."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from labctl.labfile import values
from labctl.labfile.checker import Checker, T, check_uri, choices, choose
from labctl.labfile.loader import Key, kind_of
from labctl.labfile.models import (
    DEFAULT_NAMESPACES,
    Accel,
    Attachment,
    DeviceProfile,
    Kind,
    Machine,
    Namespace,
    Network,
)
from labctl.labfile.provision import ProvisionChecker

COMMON_KEYS = ["kind", "box", "cpus", "memory", "networks", "provision", "groups"]
KIND_KEYS: dict[Kind, list[str]] = {
    Kind.VM: ["disk", "devices", "accel", "libvirt_uri"],
    Kind.LXC: ["privileged"],
    Kind.NS: ["namespaces", "command"],
}
ALL_MACHINE_KEYS = COMMON_KEYS + [k for keys in KIND_KEYS.values() for k in keys]
MIN_MEMORY = {Kind.VM: 128 * 1024**2, Kind.LXC: 32 * 1024**2, Kind.NS: 4 * 1024**2}
MAX_MEMORY = 1024**4
DEFAULT_MEMORY = 512 * 1024**2
DEFAULT_DISK = 8 * 1024**3
DEFAULT_COMMAND = ("sleep", "infinity")
RESERVED_GROUPS = ("all", "ungrouped")  # Ansible's implicit groups


class MachineBuilder:
    """Validates one machine's settings, with lab-wide defaults filled in."""

    def __init__(
        self,
        checker: Checker,
        defaults: dict[str, Any],
        networks: list[Network],
        root: Path,
        declared: set[str],
    ) -> None:
        self.checker = checker
        # Names declared in the labfile, valid or not: a reference to an invalid network is
        # not reported again, the network's own problem already is.
        self.declared = declared
        self.defaults = defaults
        self.networks = {n.name: n for n in networks}
        self.provision = ProvisionChecker(checker, root)

    def build(self, name: Any, spec: Any) -> Machine | None:
        path: Key = ("machines", name)
        valid_name = self.checker.parse(path, name, lambda v: values.name(v, "machine name"))
        if spec is None:
            spec = {}
        if not isinstance(spec, dict):
            self.checker.error(path, f"expected a mapping of machine settings, got {kind_of(spec)}")
            return None
        kind = self._kind(path, spec)
        if kind is None:
            return None
        settings = self._settings(path, spec, kind)
        machine = self._machine(valid_name, kind, settings)
        return machine if valid_name is not None else None

    def _kind(self, path: Key, spec: dict[str, Any]) -> Kind | None:
        if "kind" in spec:
            kind: Kind | None = choose(self.checker, (*path, "kind"), spec["kind"], Kind)
            return kind
        if "kind" in self.defaults:
            kind = choose(self.checker, ("defaults", "kind"), self.defaults["kind"], Kind)
            return kind  # noqa: RET504 - typed on assignment
        self.checker.error(path, "missing key 'kind': one of vm | lxc | ns", key=True)
        return None

    def _settings(self, path: Key, spec: dict[str, Any], kind: Kind) -> dict[str, tuple[Any, Key]]:
        """Each allowed key -> (value, the path it came from: the machine or defaults)."""
        allowed = COMMON_KEYS + KIND_KEYS[kind]
        settings: dict[str, tuple[Any, Key]] = {
            k: (v, ("defaults", k)) for k, v in self.defaults.items() if k in allowed
        }
        for key, value in spec.items():
            if key in allowed:
                settings[key] = (value, (*path, key))
            elif key in ALL_MACHINE_KEYS:
                owners = [k.value for k, keys in KIND_KEYS.items() if key in keys]
                self.checker.error(
                    (*path, key),
                    f"applies only to {' and '.join(owners)} machines, not {kind.value}",
                    key=True,
                )
            else:
                self.checker.unknown_key((*path, key), key, allowed)
        return settings

    def _get(
        self, settings: dict[str, tuple[Any, Key]], key: str, parser: Callable[[Any], T], default: T
    ) -> T | None:
        if key not in settings:
            return default
        value, path = settings[key]
        return self.checker.parse(path, value, parser)

    def _machine(self, name: str | None, kind: Kind, s: dict[str, tuple[Any, Key]]) -> Machine | None:
        memory = self._get(s, "memory", values.size, DEFAULT_MEMORY)
        if memory is not None and not MIN_MEMORY[kind] <= memory <= MAX_MEMORY:
            low = values.human_size(MIN_MEMORY[kind])
            self.checker.error(s["memory"][1], f"must be from {low} to 1T for a {kind.value} machine")
        fields: dict[str, Any] = {
            "box": self._get(s, "box", lambda v: values.name(v, "box name"), None),
            "cpus": self._get(s, "cpus", lambda v: values.integer(v, 1, 256), 1),
            "memory": memory,
            "networks": self._attachments(s, kind),
            "provision": self.provision.steps(s["provision"]) if "provision" in s else (),
            "groups": self._get(s, "groups", _groups, ()),
        }
        if kind is Kind.VM:
            fields.update(self._vm_fields(s))
        elif kind is Kind.LXC:
            fields["privileged"] = self._get(s, "privileged", values.boolean, False)
        elif kind is Kind.NS:
            fields.update(self._ns_fields(s, fields["networks"]))
        if kind in (Kind.VM, Kind.LXC) and fields["box"] is None and "box" not in s:
            self.checker.error(
                ("machines", name or "?"),
                f"missing key 'box': a {kind.value} machine starts from a box (e.g. box: debian-12)",
                key=True,
            )
        if name is None or any(
            v is None for k, v in fields.items() if k not in ("box", "disk", "libvirt_uri")
        ):
            return None
        return Machine(name=name, kind=kind, **fields)

    def _vm_fields(self, s: dict[str, tuple[Any, Key]]) -> dict[str, Any]:
        disk = self._get(s, "disk", values.size, DEFAULT_DISK)
        if disk is not None and not 1024**3 <= disk <= 2 * 1024**4:
            self.checker.error(s["disk"][1], "must be from 1G to 2T")
        uri = (
            check_uri(self.checker, s["libvirt_uri"][1], s["libvirt_uri"][0]) if "libvirt_uri" in s else None
        )
        return {
            "disk": disk,
            "devices": self._get(
                s,
                "devices",
                lambda v: DeviceProfile(values.choice(v, choices(DeviceProfile))),
                DeviceProfile.PARAVIRTUAL,
            ),
            "accel": self._get(s, "accel", lambda v: Accel(values.choice(v, choices(Accel))), Accel.AUTO),
            "libvirt_uri": uri,
        }

    def _ns_fields(
        self, s: dict[str, tuple[Any, Key]], attachments: tuple[Attachment, ...] | None
    ) -> dict[str, Any]:
        namespaces = self._get(s, "namespaces", _namespaces, DEFAULT_NAMESPACES)
        if namespaces is not None and Namespace.MNT not in namespaces:
            self.checker.error(
                s["namespaces"][1],
                "must include mnt: the container's root filesystem needs its own mount namespace",
            )
        if (
            namespaces is not None
            and Namespace.NET not in namespaces
            and "networks" in s
            and s["networks"][0]
        ):
            self.checker.error(
                s["networks"][1],
                "a machine without the net namespace shares the host's network and cannot join lab networks; add net to namespaces or remove networks",
            )
        if namespaces is not None and Namespace.NET not in namespaces:
            attachments = ()
        return {
            "namespaces": namespaces,
            "command": self._get(s, "command", _command, DEFAULT_COMMAND),
            "networks": attachments,
        }

    def _attachments(self, s: dict[str, tuple[Any, Key]], kind: Kind) -> tuple[Attachment, ...] | None:
        if "networks" not in s:
            first = next(iter(self.networks), None)
            return (Attachment(first),) if first else ()
        raw, path = s["networks"]
        if not isinstance(raw, list):
            self.checker.error(path, f"expected a list of network names, got {kind_of(raw)}")
            return None
        result = [self._attachment((*path, i), item) for i, item in enumerate(raw)]
        names = [a.network for a in result if a is not None]
        for index, net in enumerate(names):
            if net in names[:index]:
                self.checker.error((*path, index), f"network {net!r} is listed twice")
        return None if None in result else tuple(a for a in result if a is not None)

    def _attachment(self, path: Key, item: Any) -> Attachment | None:
        if isinstance(item, dict):
            unknown = [k for k in item if k not in ("name", "ip")]
            for key in unknown:
                self.checker.unknown_key((*path, key), key, ["name", "ip"])
            if "name" not in item:
                self.checker.error(path, "missing key 'name' (the network to join)", key=True)
                return None
            net = self._network_ref((*path, "name"), item["name"])
            ip = self.checker.parse((*path, "ip"), item["ip"], values.address) if "ip" in item else None
            if net is None or ("ip" in item and ip is None) or unknown:
                return None
            return Attachment(net, ip)
        net = self._network_ref(path, item)
        return Attachment(net) if net else None

    def _network_ref(self, path: Key, value: Any) -> str | None:
        if not isinstance(value, str):
            self.checker.error(path, f"expected a network name, got {kind_of(value)}")
            return None
        if value in self.declared and value not in self.networks:
            return None
        if value not in self.networks:
            known = list(self.networks)
            listed = ", ".join(known) if known else "none"
            self.checker.error(
                path,
                f"network {value!r} is not declared (declared: {listed}){values.suggestion(value, known)}",
            )
            return None
        return value


def _groups(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ValueError(f"expected a list of group names, got {kind_of(value)}")
    for item in value:
        if not isinstance(item, str) or not values.GROUP_NAME.fullmatch(item):
            shown = values.shown(item) if isinstance(item, str) else kind_of(item)
            raise ValueError(
                f"group names use lowercase letters, digits and _, starting with a letter; got {shown}"
            )
        if item in RESERVED_GROUPS:
            raise ValueError(f"{item!r} is Ansible's own group of every host; choose another name")
    return tuple(value)


def _namespaces(value: Any) -> frozenset[Namespace]:
    known = choices(Namespace)
    if not isinstance(value, list) or not value:
        raise ValueError(f"expected a list of namespaces from {' '.join(known)}, got {kind_of(value)}")
    result = set()
    for item in value:
        text = values.choice(item, known)
        if Namespace(text) in result:
            raise ValueError(f"namespace {text!r} is listed twice")
        result.add(Namespace(text))
    return frozenset(result)


def _command(value: Any) -> tuple[str, ...]:
    import shlex

    if isinstance(value, str):
        try:
            parts = shlex.split(value)
        except ValueError as exc:
            raise ValueError(f"cannot split the command: {exc}") from None
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        parts = list(value)
    else:
        raise ValueError(
            f"expected a command as a list of words (e.g. [sleep, infinity]), got {kind_of(value)}"
        )
    if not parts:
        raise ValueError("the command is empty")
    return tuple(parts)
