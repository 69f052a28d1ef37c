"""Lab data and box rootfs out of other host users' reach (issue 18 item 2), on a stand-in home."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from test_box_store import fake_box

from labctl.box import BoxStore
from labctl.drivers import LabContext, overlay
from labctl.drivers import ns as ns_module
from labctl.drivers.ns import NsDriver
from labctl.errors import HostError
from labctl.idmap import Idmap
from labctl.labfile import load_lab
from labctl.paths import own_dir

LABFILE = """\
name: demo
machines:
  plain: {kind: ns, box: debian-12, memory: 32M}
  mapped: {kind: ns, box: debian-12, memory: 32M, namespaces: [pid, mnt, user]}
"""


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.fixture
def context(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LabContext:
    monkeypatch.setenv("LABCTL_HOME", str(tmp_path / "home"))
    (tmp_path / "lab").mkdir()
    (tmp_path / "lab/labfile.yml").write_text(LABFILE)
    return LabContext(load_lab(str(tmp_path / "lab/labfile.yml")))


def test_own_dir_sets_the_exact_mode_whatever_the_umask_or_an_earlier_run(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        assert mode(own_dir(tmp_path / "a", 0o700)) == 0o700
    finally:
        os.umask(old)
    (tmp_path / "b").mkdir(mode=0o777)
    (tmp_path / "b").chmod(0o777)  # as runc or a careless tool may leave it
    assert mode(own_dir(tmp_path / "b", 0o711)) == 0o711


def test_own_dir_refuses_a_link_or_a_file_in_the_way(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o755)
    (tmp_path / "link").symlink_to(target)
    (tmp_path / "file").write_text("")
    for planted in ("link", "file"):
        with pytest.raises(HostError, match="is not a directory"):
            own_dir(tmp_path / planted, 0o700)
    assert mode(target) == 0o755  # never chmod'ed through the link


def test_lab_data_dirs_let_others_pass_but_never_list(context: LabContext) -> None:
    labs = context.data_dir.parent
    labs.mkdir(parents=True, mode=0o700)  # runc --root makes missing parents 0700
    ansible = context.prepare_data_dir("ansible", 0o700)
    assert mode(labs) == 0o711 and mode(context.data_dir) == 0o711
    assert mode(ansible) == 0o700


def test_ns_bundles_are_private_and_a_mapped_root_gets_search_by_group(
    context: LabContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ns_module, "ns_idmap", lambda: Idmap(1_065_536, 1_065_536))
    driver = NsDriver(context)
    plain, mapped = context.lab.machine("plain"), context.lab.machine("mapped")
    driver._private_bundle(plain)
    driver._private_bundle(mapped)
    assert mode(driver.bundle(plain)) == 0o700
    assert mode(driver.bundle(mapped)) == 0o710
    assert driver.bundle(mapped).stat().st_gid == 1_065_536
    assert mode(driver.bundle(plain).parent) == 0o711


def test_a_box_rootfs_is_sealed_when_installed_and_when_an_old_one_is_read(tmp_path: Path) -> None:
    store = BoxStore(tmp_path / "store")
    box_dir = fake_box(store, "debian-12")
    (box_dir / "rootfs").chmod(0o755)  # installed by an older labctl
    rootfs = store.get("debian-12").rootfs
    assert rootfs is not None and mode(rootfs) == 0o700
    assert mode(rootfs / "etc") == 0o755  # the tree inside keeps the box's own modes


def test_the_host_side_overlay_is_mounted_nosuid_nodev(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr(overlay, "run", lambda argv, **_: calls.append([str(a) for a in argv]))
    monkeypatch.setattr(overlay, "is_mounted", lambda _: False)
    lower = tmp_path / "lower"
    lower.mkdir()
    overlay.mount_overlay(lower, tmp_path / "upper", tmp_path / "work", tmp_path / "rootfs")
    options = calls[0][calls[0].index("-o") + 1].split(",")
    assert {"nosuid", "nodev"} <= set(options)
