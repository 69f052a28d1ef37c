"""The generated comparison lab: a valid labfile, equal machines, a subnet clear of host routes."""

from __future__ import annotations

import ipaddress
import random
from pathlib import Path

import pytest
import yaml

from labctl import addressing
from labctl.bench import compare
from labctl.errors import HostError, UsageError
from labctl.labfile import load_lab
from labctl.labfile.models import Accel, DeviceProfile, Kind


def test_generated_labfile_passes_validation_with_equal_machines(tmp_path: Path) -> None:
    data = compare.labfile("debian-12", [*compare.KINDS], "10.213.200.0/24", cpus=1, memory="768M")
    path = tmp_path / "labfile.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    lab = load_lab(str(path))
    by_name = {m.name: m for m in lab.machines}
    assert {m.kind for m in lab.machines} == {Kind.NS, Kind.LXC, Kind.VM}
    assert {(m.cpus, m.memory, m.box) for m in lab.machines} == {(1, 768 * 2**20, "debian-12")}
    assert by_name["vm-emulated"].devices is DeviceProfile.EMULATED
    assert by_name["vm-paravirtual"].devices is DeviceProfile.PARAVIRTUAL
    assert by_name["vm-tcg"].accel is Accel.TCG
    assert [n.cidr for n in lab.networks] == [ipaddress.IPv4Network("10.213.200.0/24")]
    assert all(m.networks[0].network == "bench" for m in lab.machines)


def test_subnet_avoids_every_host_route() -> None:
    routes = [f"10.213.{i}.0/24" for i in range(128, 255)]  # all but 10.213.255.0/24 taken
    assert addressing.free_subnet(routes, rng=random.Random(1)) == "10.213.255.0/24"
    with pytest.raises(HostError):
        addressing.free_subnet(["10.0.0.0/8"])


def test_kinds_are_checked_and_tcg_joins_only_on_kvm_hosts() -> None:
    assert compare.parse_kinds("ns, lxc") == ["ns", "lxc"]
    with pytest.raises(UsageError, match="docker"):
        compare.parse_kinds("ns,docker")
    assert "vm-tcg" not in compare.default_kinds(kvm=False)
    assert compare.default_kinds(kvm=True)[-1] == "vm-tcg"
