"""The box store without building anything: names, lookup, users, locks, removal, recipes, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labctl.box import BoxStore, validate_name
from labctl.box.recipe import load_recipe, parse_recipe
from labctl.cli import main
from labctl.errors import BoxError, UsageError


def fake_box(store: BoxStore, name: str) -> Path:
    """A box directory as install() leaves it, with one tiny artefact."""
    box_dir = store.path / name
    (box_dir / "rootfs/etc").mkdir(parents=True)
    (box_dir / "rootfs.tar.zst").write_bytes(b"x")
    meta = {
        "format": 1, "name": name, "version": "20250101.000000-abcd1234", "built": "2025-01-01T00:00:00Z",
        "cmdline": "root=LABEL=labctl-root", "rootfs_bytes": 1024,
        "artefacts": {"rootfs.tar.zst": {"sha256": "0" * 64, "size": 1}},
    }  # fmt: skip
    (box_dir / "box.json").write_text(json.dumps(meta))
    return box_dir


@pytest.fixture
def store(tmp_path: Path) -> BoxStore:
    return BoxStore(tmp_path / "store")


@pytest.mark.parametrize("name", ["debian-12", "a", "x" * 63, "web1"])
def test_valid_names(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize("name", ["", "-a", "a-", "A", "a_b", "a.b", "x" * 64, "../x", "a/b"])
def test_invalid_names_are_usage_errors(name: str) -> None:
    with pytest.raises(UsageError):
        validate_name(name)


def test_missing_box_names_the_build_command(store: BoxStore) -> None:
    with pytest.raises(BoxError) as caught:
        store.get("debian-12")
    assert caught.value.message == "box debian-12 is not in the store"
    assert caught.value.hint == "labctl box build debian-12"
    assert store.list() == []
    assert not store.has("debian-12")


def test_get_and_list(store: BoxStore) -> None:
    fake_box(store, "debian-12")
    box = store.get("debian-12")
    assert store.has("debian-12")
    assert [b.name for b in store.list()] == ["debian-12"]
    assert box.rootfs == store.path / "debian-12/rootfs"
    assert box.kernel is None and box.initrd is None
    assert box.cmdline == "root=LABEL=labctl-root"
    assert box.kinds == ["lxc", "ns"]
    assert len(box.sha256) == 64
    assert box.size == 1025


def test_users_block_removal_until_their_lab_is_gone(store: BoxStore, tmp_path: Path) -> None:
    fake_box(store, "debian-12")
    lab = tmp_path / "lab"
    (lab / ".labctl").mkdir(parents=True)
    store.register_user("debian-12", "lab-1", lab)
    assert store.users("debian-12") == [lab]
    with pytest.raises(BoxError, match=str(lab)):
        store.remove("debian-12")
    assert store.has("debian-12")
    (lab / ".labctl").rmdir()  # the lab was destroyed without unregistering
    assert store.users("debian-12") == []
    store.remove("debian-12")
    assert not store.has("debian-12")
    assert not (store.path / "debian-12").exists()


def test_unregister_and_forced_removal(store: BoxStore, tmp_path: Path) -> None:
    fake_box(store, "debian-12")
    (tmp_path / "lab/.labctl").mkdir(parents=True)
    store.register_user("debian-12", "lab-1", tmp_path / "lab")
    store.unregister_user("debian-12", "lab-1")
    assert store.users("debian-12") == []
    store.register_user("debian-12", "lab-2", tmp_path / "lab")
    store.remove("debian-12", force=True)
    assert not store.has("debian-12")


def test_lock_keeps_a_second_holder_out(store: BoxStore) -> None:
    with store.lock("debian-12"), pytest.raises(BoxError, match="another labctl"), store.lock("debian-12"):
        pass
    with store.lock("debian-12"):  # released again
        pass


def test_failed_staging_leaves_nothing(store: BoxStore) -> None:
    with pytest.raises(RuntimeError), store.staging("web") as stage:
        (stage / "partial").write_text("half a box")
        raise RuntimeError("interrupted")
    assert list((store.path / ".staging").iterdir()) == []
    assert not store.has("web")


def test_the_debian_recipe_loads() -> None:
    recipe = load_recipe("debian-12")
    assert recipe.suite == "bookworm"
    assert "root=LABEL=labctl-root" in recipe.kernel_cmdline
    for package in ("systemd", "openssh-server", "python3", "cloud-init", "linux-image-amd64", "fio"):
        assert package in recipe.packages
    assert "linux-image-cloud-amd64" not in recipe.packages  # the cloud kernel has no e1000
    assert "debian-12" in BoxStore().recipe_names()


def test_recipe_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(BoxError, match="unknown keys: colour"):
        parse_recipe("x", tmp_path / "x.yml", b"format: 1\ncolour: red\n")
    with pytest.raises(BoxError, match="no recipe for box nope"):
        load_recipe("nope")


def test_cli_exit_codes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LABCTL_HOME", str(tmp_path / "home"))
    source = tmp_path / "box.tar"
    source.write_bytes(b"not a box")
    assert main(["box", "add", "web", str(source), "--sha256", "nothex"]) == 2
    assert main(["box", "add", "Bad_Name", str(source), "--sha256", "0" * 64]) == 2
    assert main(["box", "add", "web", str(source), "--sha256", "0" * 64]) == 1
    assert "checksum mismatch" in capsys.readouterr().err
    assert main(["box", "remove", "web"]) == 1
    assert main(["box", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["box"]) == 2
