"""The cloud-init NoCloud seed: what it tells the guest, escaped, and the ISO it is packed in."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml
from test_vm_domain import golden_lab

from labctl import addressing, seed
from labctl.labfile.models import Lab, Machine

KEYS = seed.SeedKeys(
    "ssh-ed25519 AAAAC3client labctl-lab",
    "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\ndef\n-----END OPENSSH PRIVATE KEY-----\n",
    "ssh-ed25519 AAAAC3host labctl-host-web",
)


def rendered(lab: Lab | None = None, name: str = "web") -> dict[str, object]:
    lab = lab or golden_lab()
    files = seed.render(lab, lab.machine(name), KEYS, instance_id="labctl-fixed")
    return {key: yaml.safe_load(text) for key, text in files.items()}


def test_user_data_sets_keys_and_host_key() -> None:
    files = seed.render(golden_lab(), golden_lab().machine("web"), KEYS)
    assert files["user-data"].startswith("#cloud-config\n")
    data = yaml.safe_load(files["user-data"])
    assert data["hostname"] == "web"
    assert data["fqdn"] == "web.golden.lab"
    assert data["ssh_authorized_keys"] == [KEYS.authorized_key]
    assert data["disable_root"] is False
    assert data["ssh_keys"] == {"ed25519_private": KEYS.host_private, "ed25519_public": KEYS.host_public}
    assert data["ssh_genkeytypes"] == []
    assert data["growpart"]["mode"] == "auto" and data["resize_rootfs"] is True


def test_network_config_matches_nics_by_mac_with_static_addresses() -> None:
    lab = golden_lab()
    config = rendered()["network-config"]
    assert isinstance(config, dict)
    plan = addressing.plan(lab)
    lan, wan = plan[("web", "lan")], plan[("web", "wan")]
    eths = config["ethernets"]
    assert eths["lab0"]["match"]["macaddress"] == lan.mac
    assert eths["lab0"]["addresses"] == [f"{lan.ip}/24"]
    assert eths["lab0"]["nameservers"] == {"addresses": ["10.213.7.1"], "search": ["golden.lab"]}
    assert "routes" not in eths["lab0"]  # isolated: no way out
    assert eths["lab1"]["addresses"] == ["10.213.8.50/24"]
    assert eths["lab1"]["routes"] == [{"to": "0.0.0.0/0", "via": str(wan.gateway)}]


def test_meta_data_has_a_fresh_instance_id() -> None:
    lab = golden_lab()
    first = yaml.safe_load(seed.render(lab, lab.machine("web"), KEYS)["meta-data"])
    second = yaml.safe_load(seed.render(lab, lab.machine("web"), KEYS)["meta-data"])
    assert first["local-hostname"] == "web"
    assert first["instance-id"] != second["instance-id"]


def test_hostile_values_stay_inside_their_yaml_strings() -> None:
    lab = golden_lab()
    evil = Machine(**{**lab.machine("web").__dict__, "name": 'x"\n- runcmd: [rm, -rf, /]'})
    lab = Lab(lab.name, lab.file, lab.networks, (evil,))
    data = yaml.safe_load(seed.render(lab, evil, KEYS)["user-data"])
    assert data["hostname"] == evil.name
    assert "runcmd" not in data


def test_iso_is_labelled_cidata_and_private(tmp_path: Path) -> None:
    iso = tmp_path / "seed.iso"
    seed.build(seed.render(golden_lab(), golden_lab().machine("web"), KEYS), iso)
    assert iso.stat().st_mode & 0o777 == 0o600
    info = subprocess.run(["isoinfo", "-d", "-i", str(iso)], capture_output=True, text=True)
    assert "Volume id: cidata" in info.stdout
    listing = subprocess.run(["isoinfo", "-R", "-f", "-i", str(iso)], capture_output=True, text=True).stdout
    assert sorted(listing.split()) == ["/meta-data", "/network-config", "/user-data"]
    assert [p.name for p in tmp_path.iterdir()] == ["seed.iso"]  # no staging left behind


def test_resolv_conf_points_at_the_lab_dnsmasq() -> None:
    data = yaml.safe_load(seed.render(golden_lab(), golden_lab().machine("web"), KEYS)["user-data"])
    (entry,) = data["write_files"]
    assert entry["path"] == "/etc/resolv.conf"
    assert entry["content"] == "nameserver 10.213.7.1\nnameserver 10.213.8.1\nsearch golden.lab\n"
