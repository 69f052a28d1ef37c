"""The OCI config.json of ns machines: golden files, and exactly the declared namespaces."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from labctl.drivers.host_view import HostView
from labctl.drivers.oci import BundleSpec, config, mounts, namespaces
from labctl.errors import DriverError
from labctl.idmap import Idmap
from labctl.labfile.models import Kind, Machine, Namespace

GOLDEN = Path(__file__).parent / "golden" / "oci"
REGENERATE = os.environ.get("LABCTL_REGENERATE_GOLDEN") == "1"
# What scripts/setup-host gives root on a Debian host; a fixed value keeps the golden files stable.
IDMAP = Idmap(1000000, 1000000)
BASE = Machine(name="probe", kind=Kind.NS, box=None, cpus=1, memory=64 * 1024**2, command=())
CASES = {
    "default": frozenset({Namespace.PID, Namespace.NET, Namespace.UTS, Namespace.IPC, Namespace.MNT}),
    "user": frozenset(
        {Namespace.PID, Namespace.NET, Namespace.UTS, Namespace.IPC, Namespace.MNT, Namespace.USER}
    ),
    "net-uts-mnt": frozenset({Namespace.NET, Namespace.UTS, Namespace.MNT}),
    "mnt-only-user": frozenset({Namespace.MNT, Namespace.USER}),
}


def spec_for(case: str, **changes: object) -> BundleSpec:
    machine = dataclasses.replace(BASE, namespaces=CASES[case], **changes)  # type: ignore[arg-type]
    view = HostView(masked=("/etc/gshadow", "/etc/shadow", "/etc/ssl/private"), links=(("bin", "usr/bin"),))
    return BundleSpec("labctl-demo-0a1b2c-probe", machine, view, etc_dir="/srv/ns/probe/etc", idmap=IDMAP)


@pytest.mark.parametrize("case", sorted(CASES))
def test_config_matches_golden(case: str) -> None:
    rendered = json.dumps(config(spec_for(case)), indent=2) + "\n"
    golden = GOLDEN / f"{case}.json"
    if REGENERATE:
        golden.write_text(rendered)
    assert rendered == golden.read_text(), f"regenerate with LABCTL_REGENERATE_GOLDEN=1 if intended: {golden}"


@pytest.mark.parametrize("case", sorted(CASES))
def test_exactly_the_declared_namespaces_are_new(case: str) -> None:
    entries = namespaces(spec_for(case))
    assert all("path" not in entry for entry in entries)  # new ones only; the rest stay the host's
    names = {"pid": "pid", "network": "net", "uts": "uts", "ipc": "ipc", "mount": "mnt", "user": "user"}
    assert {names[entry["type"]] for entry in entries} == {str(n) for n in CASES[case]}


def test_user_namespace_maps_root_to_roots_subordinate_range() -> None:
    """The range comes from the host (labctl.idmap), never a fixed 100000 that Debian gives its
    first user: that user would own the container's files."""
    spec = dataclasses.replace(spec_for("user"), idmap=Idmap(3000000, 4000000))
    linux = config(spec)["linux"]
    assert linux["uidMappings"] == [{"containerID": 0, "hostID": 3000000, "size": 65536}]
    assert linux["gidMappings"] == [{"containerID": 0, "hostID": 4000000, "size": 65536}]
    assert "uidMappings" not in config(spec_for("default"))["linux"]
    with pytest.raises(DriverError):
        config(dataclasses.replace(spec, idmap=None))


def test_mounts_the_user_namespace_may_not_make_become_binds() -> None:
    by_destination = {m["destination"]: m for m in mounts(spec_for("mnt-only-user"))}
    assert by_destination["/proc"]["type"] == "bind"  # host pid namespace: no new procfs allowed
    assert by_destination["/sys"]["type"] == "bind"  # host netns: no new sysfs allowed
    assert "/dev/mqueue" not in by_destination  # host ipc namespace
    assert "/etc/resolv.conf" not in by_destination  # host network, host resolver
    assert "/etc/hostname" not in by_destination


def test_limits_hostname_command_and_cgroup() -> None:
    spec = spec_for("default", cpus=2, memory=128 * 1024**2, command=("python3", "-c", "print('a; b')"))
    rendered = config(spec)
    assert rendered["process"]["args"] == ["python3", "-c", "print('a; b')"]
    assert rendered["hostname"] == "probe"
    assert rendered["linux"]["resources"]["memory"] == {"limit": 128 * 1024**2}
    assert rendered["linux"]["resources"]["cpu"]["quota"] == 200000
    assert rendered["linux"]["cgroupsPath"] == "/labctl-demo-0a1b2c-probe"
    assert "hostname" not in config(spec_for("mnt-only-user"))  # no uts namespace: runc refuses one
