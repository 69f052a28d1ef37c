"""Root's subordinate id range: read by name or uid, refused when another user could share it."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from labctl.errors import HostError
from labctl.idmap import SIZE, Idmap, host_idmap, let_traverse, ns_idmap, parse, root_start


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_root_by_name_or_by_uid(tmp_path: Path) -> None:
    by_name = write(tmp_path, "subuid", "student:100000:65536\nroot:1000000:131072\n")
    by_uid = write(tmp_path, "subgid", "student:100000:65536\n0:2000000:131072\n")
    idmap = host_idmap(by_name, by_uid, uids=lambda: [0, 1000], gids=lambda: [0, 1000])
    assert idmap == Idmap(1000000, 2000000)
    assert idmap.shifted(0, 4) == (1000000, 2000004)
    with pytest.raises(ValueError):
        idmap.shifted(SIZE, 0)  # 65536 is past the last mapped id


def test_ns_machines_get_the_block_after_the_lxc_one(tmp_path: Path) -> None:
    """An ns machine may share the host's pid namespace: as LXC machines' root it could signal them."""
    subuid = write(tmp_path, "subuid", "root:1000000:131072\n")
    subgid = write(tmp_path, "subgid", "root:2000000:131072\n")
    assert ns_idmap(subuid, subgid) == Idmap(1000000 + SIZE, 2000000 + SIZE)


def test_missing_range_gives_the_usermod_hint(tmp_path: Path) -> None:
    for text in ("", "student:100000:65536\n", "# root:1000000:65536\nroot:x:y\n"):
        with pytest.raises(HostError) as caught:
            root_start(write(tmp_path, "subuid", text), [])
        assert "no subordinate ids" in caught.value.message
        assert "usermod --add-subuids" in (caught.value.hint or "")
    with pytest.raises(HostError):
        root_start(tmp_path / "absent", [])


def test_a_range_shared_with_another_user_is_refused(tmp_path: Path) -> None:
    """Debian gives its first user 100000..165535: were root's range that, the user's own
    user namespace would own the container's files."""
    shared = write(tmp_path, "subuid", "student:100000:65536\nroot:100000:131072\n")
    with pytest.raises(HostError) as caught:
        root_start(shared, [])
    assert "overlaps the range of student (line 1)" in caught.value.message
    edge = write(tmp_path, "subuid2", "student:1131071:10\nroot:1000000:131072\n")
    with pytest.raises(HostError):
        root_start(edge, [])  # one id in common is enough
    adjacent = write(tmp_path, "subuid3", "student:1131072:10\nroot:1000000:131072\n")
    assert root_start(adjacent, []) == 1000000


def test_a_range_holding_a_host_account_or_too_small_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "subuid", "root:1000:131072\n")
    with pytest.raises(HostError) as caught:
        root_start(path, [0, 1000])
    assert "host account with id 1000" in caught.value.message
    small = write(tmp_path, "small", "root:1000000:1000\n")
    with pytest.raises(HostError) as caught:
        root_start(small, [])
    assert "fewer than 131072" in caught.value.message


def test_the_first_usable_root_entry_wins(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "subuid",
        "student:100000:65536\nroot:100000:131072\nroot:1000000:65536\nroot:3000000:131072\n",
    )
    assert root_start(path, []) == 3000000
    assert [e.owner for e in parse("a:1:2\nbad line\nb:3:4:5\n\nc:5:6\n")] == ["a", "c"]


@pytest.fixture
def searchable() -> Iterator[Path]:
    """A directory every parent of which others may search (pytest's tmp_path sits in a 0700 one)."""
    with tempfile.TemporaryDirectory(prefix="labctl-test-") as name:
        path = Path(name)
        path.chmod(0o755)
        yield path


def test_let_traverse_adds_search_only_below_top(searchable: Path) -> None:
    tmp_path = searchable
    top = tmp_path / "home"
    leaf = top / "labs" / "x" / "lxc"
    leaf.mkdir(parents=True)
    for directory in (top, top / "labs", top / "labs" / "x", leaf):
        directory.chmod(0o700)
    tmp_path.chmod(0o755)
    let_traverse(top, leaf)
    for directory in (top, top / "labs", top / "labs" / "x", leaf):
        assert directory.stat().st_mode & 0o777 == 0o711  # search, never read (listing)
    tmp_path.chmod(0o700)
    try:
        with pytest.raises(HostError) as caught:
            let_traverse(top, leaf)  # above top is the host's: reported, not changed
        assert str(tmp_path) in caught.value.message
        assert tmp_path.stat().st_mode & 0o777 == 0o700
    finally:
        tmp_path.chmod(0o755)
    with pytest.raises(ValueError):
        let_traverse(leaf, top)
    assert os.access(leaf, os.X_OK)
