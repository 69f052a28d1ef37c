"""What a box-less ns machine sees of the host (issue 18 item 8), on a stand-in host root."""

from __future__ import annotations

import os
from pathlib import Path

from labctl.drivers import host_view
from labctl.drivers.oci import BundleSpec, config
from labctl.labfile.models import DEFAULT_NAMESPACES, Kind, Machine


def stand_in_host(root: Path) -> Path:
    files = {
        "etc/passwd": 0o644,
        "etc/shadow": 0o640,
        "etc/gshadow": 0o600,
        "etc/ssh/ssh_config": 0o644,
        "etc/ssh/ssh_host_ed25519_key": 0o600,
        "etc/ssh/ssh_host_ed25519_key.pub": 0o644,
        "etc/ssl/private/lab.key": 0o644,  # readable itself, but inside a private directory
        "usr/bin/env": 0o755,
        "root/.ssh/id_ed25519": 0o600,
    }
    for relative, mode in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("SECRET\n")
        path.chmod(mode)
    (root / "etc/ssl/private").chmod(0o700)
    (root / "etc/libvirt-secrets").mkdir()
    (root / "etc/libvirt-secrets").chmod(0o711)  # traversable but not listable: masked too
    (root / "etc/localtime").symlink_to("/usr/share/zoneinfo/UTC")
    (root / "bin").symlink_to("usr/bin")
    (root / "lib64").symlink_to("usr/lib64")
    (root / "vmlinuz").symlink_to("boot/vmlinuz-6.1")  # not into /usr: left out
    return root


def test_survey_masks_what_an_unprivileged_host_user_cannot_read(tmp_path: Path) -> None:
    view = host_view.survey(stand_in_host(tmp_path))
    assert view.masked == (
        "/etc/gshadow",
        "/etc/libvirt-secrets",
        "/etc/shadow",
        "/etc/ssh/ssh_host_ed25519_key",
        "/etc/ssl/private",  # the directory, not each file in it
    )
    assert view.links == (("bin", "usr/bin"), ("lib64", "usr/lib64"))


def test_skeleton_has_mount_points_and_links_only(tmp_path: Path) -> None:
    host = stand_in_host(tmp_path / "host")
    rootfs = tmp_path / "rootfs"
    view = host_view.survey(host)
    host_view.build_skeleton(rootfs, view)
    host_view.build_skeleton(rootfs, view)  # again: a second up finds it made
    assert os.readlink(rootfs / "bin") == "usr/bin"
    for directory in rootfs.iterdir():
        if not directory.is_symlink():
            assert list(directory.iterdir()) == [], directory  # nothing of the host is copied
    assert {p.name for p in rootfs.iterdir()} >= {"usr", "etc", "root", "home", "var", "proc", "tmp"}


def test_box_less_config_binds_only_usr_and_etc_of_the_host(tmp_path: Path) -> None:
    machine = Machine(
        name="probe", kind=Kind.NS, box=None, cpus=1, memory=64 * 1024**2, namespaces=DEFAULT_NAMESPACES
    )
    view = host_view.survey(stand_in_host(tmp_path))
    rendered = config(BundleSpec("labctl-demo-probe", machine, view, etc_dir="/srv/probe/etc"))
    binds = {m["destination"]: m for m in rendered["mounts"] if m["type"] == "bind"}
    host_sources = {m["source"] for m in binds.values() if not m["source"].startswith("/srv/probe/etc/")}
    assert host_sources == {"/usr", "/etc"}
    assert all("ro" in m["options"] for m in binds.values())
    tmpfs = {m["destination"] for m in rendered["mounts"] if m["type"] == "tmpfs"}
    assert {"/root", "/home", "/var", "/tmp"} <= tmpfs
    assert rendered["root"]["readonly"] is True
    assert set(view.masked) <= set(rendered["linux"]["maskedPaths"])
    assert "/proc/kcore" in rendered["linux"]["maskedPaths"]


def test_a_box_machine_sees_its_box_not_the_host() -> None:
    machine = Machine(
        name="probe",
        kind=Kind.NS,
        box="debian-12",
        cpus=1,
        memory=64 * 1024**2,
        namespaces=DEFAULT_NAMESPACES,
    )
    rendered = config(BundleSpec("labctl-demo-probe", machine, None, etc_dir="/srv/probe/etc"))
    sources = {m["source"] for m in rendered["mounts"] if m["type"] == "bind"}
    assert not sources & {"/usr", "/etc", "/"}
    assert rendered["root"]["readonly"] is False
