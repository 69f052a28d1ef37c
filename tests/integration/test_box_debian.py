"""The real debian-12 box: its metadata, and its one root file system running as all three kinds.

runc and LXC run the rootfs through an OverlayFS mount with the box as lower dir (as the
container drivers do); the VM boots disk.qcow2 (behind a qcow2 overlay) with the box's kernel
and initrd under libvirt TCG, gets its key from a NoCloud seed and answers SSH.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from labctl.box import Box

pytestmark = pytest.mark.integration

REQUIRED_PACKAGES = (
    "systemd", "systemd-sysv", "openssh-server", "python3", "sudo", "iproute2", "iputils-ping",
    "cloud-init", "cloud-guest-utils", "linux-image-amd64", "initramfs-tools", "pciutils", "dbus",
    "sysbench", "fio", "iperf3", "stress-ng",
)  # fmt: skip
INITRD_MODULES = ("virtio_blk", "virtio_pci", "virtio_net", "ahci", "ata_piix", "sd_mod", "e1000", "ext4")
TOOLS = "python3 sshd sudo ip ping lspci sysbench fio iperf3 stress-ng growpart cloud-init"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@pytest.fixture
def workdir() -> Iterator[Path]:
    # Not tmp_path: that is 0700, and QEMU (libvirt-qemu) must reach the files in it.
    path = Path(tempfile.mkdtemp(prefix="labctl-boxtest-", dir="/var/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-R", str(path / "merged")], capture_output=True, check=False)
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def overlay(box: Box, workdir: Path) -> Iterator[Path]:
    assert box.rootfs is not None
    upper, work, merged = workdir / "upper", workdir / "work", workdir / "merged"
    for d in (upper, work, merged):
        d.mkdir()
    options = f"lowerdir={box.rootfs},upperdir={upper},workdir={work}"
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, str(merged)], check=True)
    try:
        yield merged
    finally:
        subprocess.run(["umount", str(merged)], check=False)


def test_box_metadata_and_artefacts(debian_box: Box) -> None:
    box, meta = debian_box, debian_box.meta
    assert box.kinds == ["vm", "lxc", "ns"]
    assert "root=LABEL=labctl-root" in box.cmdline and "console=ttyS0" in box.cmdline
    for name, info in meta["artefacts"].items():
        path = box.path / name
        assert path.stat().st_size == info["size"], name
        assert sha256(path) == info["sha256"], name
        assert path.stat().st_mode & 0o777 == 0o644, name
    assert box.path.stat().st_mode & 0o777 == 0o755
    assert box.sha256 == sha256(box.path / "box.json")
    for package in REQUIRED_PACKAGES:
        assert package in meta["packages"], package
    assert "linux-image-cloud-amd64" not in str(meta["packages"])


def test_building_leaves_the_hosts_devices_alone(debian_box: Box) -> None:
    # Package scripts in the build chroot once chgrp'ed the host's /dev/kvm to the chroot's
    # kvm gid; libvirt then re-probed QEMU at every domain start.
    import grp

    kvm = Path("/dev/kvm")
    if kvm.exists():
        assert kvm.stat().st_gid == grp.getgrnam("kvm").gr_gid
        assert kvm.stat().st_mode & 0o777 == 0o660
    assert not [
        line for line in Path("/proc/self/mountinfo").read_text().splitlines() if "labctl-dev" in line
    ]


def test_rootfs_is_clean_for_many_machines(debian_box: Box) -> None:
    root = debian_box.rootfs
    assert root is not None
    assert list((root / "etc/ssh").glob("ssh_host_*")) == []
    assert (root / "etc/machine-id").read_text() == ""
    assert "LABEL=labctl-root" in (root / "etc/fstab").read_text()
    assert (root / "etc/shadow").read_text().startswith("root:*:")
    assert not (root / "usr/sbin/policy-rc.d").exists()
    assert list((root / "var/cache/apt/archives").glob("*.deb")) == []
    assert list((root / "var/lib/apt/lists").glob("*_Packages")) == []
    assert (root / "etc/systemd/system/multi-user.target.wants/labctl-ssh-host-keys.service").is_symlink()


def test_initrd_has_disk_and_nic_drivers(debian_box: Box) -> None:
    root = debian_box.rootfs
    assert root is not None and debian_box.initrd is not None
    release = next((root / "usr/lib/modules").iterdir()).name
    listing = subprocess.run(
        ["chroot", str(root), "lsinitramfs", f"/boot/initrd.img-{release}"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    builtin = (root / "usr/lib/modules" / release / "modules.builtin").read_text()
    for module in INITRD_MODULES:
        assert f"/{module}.ko" in listing or f"/{module}.ko" in builtin, module


def test_rootfs_runs_under_runc(debian_box: Box, workdir: Path) -> None:
    bundle = workdir / "bundle"
    bundle.mkdir()
    subprocess.run(["runc", "spec"], cwd=bundle, check=True)
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["terminal"] = False
    config["process"]["args"] = ["sh", "-c", f"cat /etc/os-release; for t in {TOOLS}; do command -v $t; done"]
    config["root"] = {"path": str(workdir / "merged"), "readonly": False}
    config["hostname"] = "boxtest"
    (bundle / "config.json").write_text(json.dumps(config))
    name = f"labctl-boxtest-{uuid.uuid4().hex[:8]}"
    with overlay(debian_box, workdir):
        try:
            proc = subprocess.run(
                ["runc", "run", "--bundle", str(bundle), name], capture_output=True, text=True, timeout=120
            )
        finally:
            subprocess.run(["runc", "delete", "--force", name], capture_output=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "VERSION_CODENAME=bookworm" in proc.stdout
    found = {line.rsplit("/", 1)[-1] for line in proc.stdout.splitlines() if line.startswith("/")}
    assert found == set(TOOLS.split())


LXC_CONFIG = """\
lxc.uts.name = boxtest
lxc.rootfs.path = dir:{rootfs}
lxc.net.0.type = empty
lxc.mount.auto = proc:mixed sys:mixed cgroup:mixed
lxc.autodev = 1
lxc.pty.max = 16
lxc.tty.max = 0
lxc.apparmor.profile = unconfined
lxc.log.file = {log}
lxc.log.level = INFO
"""


def test_rootfs_runs_under_lxc(debian_box: Box, workdir: Path) -> None:
    lxcpath, name = workdir / "lxc", f"boxtest-{uuid.uuid4().hex[:8]}"
    (lxcpath / name).mkdir(parents=True)
    log = workdir / "lxc.log"
    lxc = ["-n", name, "-P", str(lxcpath)]
    with overlay(debian_box, workdir) as merged:
        (lxcpath / name / "config").write_text(LXC_CONFIG.format(rootfs=merged, log=log))
        try:
            subprocess.run(["lxc-start", *lxc, "-d"], check=True, capture_output=True, timeout=60)
            subprocess.run(["lxc-wait", *lxc, "-s", "RUNNING", "-t", "30"], check=True, timeout=60)
            proc = _attach_when_ready(lxc, "cat /etc/os-release; tr '\\0' ' ' < /proc/1/cmdline")
            # systemd boots the container; SSH host keys are made at boot, not shipped in the box.
            ssh = _attach_when_ready(lxc, "systemctl is-active ssh && ls /etc/ssh", timeout=180)
        finally:
            subprocess.run(["lxc-stop", *lxc, "-k"], capture_output=True, check=False, timeout=60)
    # No lxc-destroy: it deletes the rootfs, and the overlay is removed with workdir anyway.
    assert proc.returncode == 0, proc.stderr + (log.read_text() if log.exists() else "")
    assert "VERSION_CODENAME=bookworm" in proc.stdout
    assert "/sbin/init" in proc.stdout or "systemd" in proc.stdout, proc.stdout
    assert ssh.stdout.startswith("active\n") and "ssh_host_ed25519_key" in ssh.stdout, ssh.stdout + ssh.stderr


def _attach_when_ready(lxc: list[str], script: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    import time

    deadline = time.monotonic() + timeout
    while True:
        proc = subprocess.run(["lxc-attach", *lxc, "--", "sh", "-c", script], capture_output=True, text=True)
        if proc.returncode == 0 or time.monotonic() > deadline:
            return proc
        time.sleep(2)


def test_export_and_add_round_trip(debian_box: Box, workdir: Path) -> None:
    from labctl.box import BoxStore
    from labctl.box.archive import add_box, export_box

    archive = workdir / "debian-12.box"
    digest = export_box(debian_box, archive)
    copy = add_box(BoxStore(workdir / "store"), "debian-12", str(archive), digest)
    assert copy.sha256 == debian_box.sha256  # same name: box.json is kept byte for byte
    assert copy.kinds == debian_box.kinds
    assert copy.rootfs is not None and debian_box.rootfs is not None
    for name in ("etc/os-release", "usr/bin/sudo", "etc/localtime", "bin"):
        original, imported = debian_box.rootfs / name, copy.rootfs / name
        assert original.lstat().st_mode == imported.lstat().st_mode, name
        assert original.is_symlink() == imported.is_symlink(), name
        if original.is_symlink():
            assert original.readlink() == imported.readlink(), name
