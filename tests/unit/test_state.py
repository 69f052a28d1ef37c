"""State in .labctl/: versioned, written atomically, locked against a second labctl."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from pathlib import Path

import pytest

from labctl.errors import StateError
from labctl.state import FORMAT, LabState, atomic_write

LAB_ID = "demo-0123456789ab"


def test_records_round_trip_and_file_is_private(tmp_path: Path) -> None:
    state = LabState(tmp_path, "demo-abc123")
    state.update_machine("web", kind="vm", address="10.0.0.5")
    state.update_machine("web", phases={"boot": 1.5})
    data = json.loads((tmp_path / ".labctl" / "state.json").read_text())
    assert data["format"] == FORMAT
    assert data["lab_id"] == "demo-abc123"
    assert data["machines"]["web"] == {"kind": "vm", "address": "10.0.0.5", "phases": {"boot": 1.5}}
    assert (tmp_path / ".labctl" / "state.json").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / ".labctl").stat().st_mode & 0o777 == 0o700
    state.forget_machine("web")
    assert state.machines() == {}


def test_newer_format_is_refused(tmp_path: Path) -> None:
    (tmp_path / ".labctl").mkdir()
    (tmp_path / ".labctl" / "state.json").write_text(json.dumps({"format": FORMAT + 1, "machines": {}}))
    with pytest.raises(StateError, match="written by a newer labctl"):
        LabState(tmp_path, LAB_ID).load()


def test_corrupt_state_is_reported(tmp_path: Path) -> None:
    (tmp_path / ".labctl").mkdir()
    (tmp_path / ".labctl" / "state.json").write_text("{not json")
    with pytest.raises(StateError, match="is corrupt"):
        LabState(tmp_path, LAB_ID).load()


def test_atomic_write_leaves_no_temporary_files(tmp_path: Path) -> None:
    target = tmp_path / "file"
    atomic_write(target, b"one")
    atomic_write(target, b"two", 0o600)
    assert target.read_bytes() == b"two"
    assert [p.name for p in tmp_path.iterdir()] == ["file"]
    assert target.stat().st_mode & 0o777 == 0o600


def _hold_lock(
    root: str, ready: multiprocessing.synchronize.Event, release: multiprocessing.synchronize.Event
) -> None:
    with LabState(Path(root), LAB_ID).lock():
        ready.set()
        release.wait(30)


def test_second_process_waits_then_fails_naming_the_holder(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(str(tmp_path), ready, release))
    holder.start()
    try:
        assert ready.wait(10)
        started = time.monotonic()
        with pytest.raises(StateError) as caught, LabState(tmp_path, LAB_ID).lock(wait=0.5):
            pass
        assert time.monotonic() - started >= 0.5
        assert f"pid {holder.pid}" in caught.value.message
    finally:
        release.set()
        holder.join(10)
    with LabState(tmp_path, LAB_ID).lock(wait=0.5):
        assert (tmp_path / ".labctl" / "lock").read_text().strip() == str(os.getpid())


def test_records_from_parallel_threads_are_all_kept(tmp_path: Path) -> None:
    # Machines are created in parallel threads, each writing its own record through one LabState.
    import threading

    state = LabState(tmp_path, LAB_ID)

    def write(name: str) -> None:
        for step in range(20):
            state.update_machine(name, created_at=step)

    threads = [threading.Thread(target=write, args=(f"m{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert state.machines() == {f"m{i}": {"created_at": 19} for i in range(8)}


def test_a_lock_file_removed_while_waited_on_is_not_a_lock(tmp_path: Path) -> None:
    """`destroy` removes .labctl/ with the lock file in it while another labctl waits on that
    file: the waiter must then lock the file a third labctl opens, not the removed one."""
    import shutil
    import threading

    lock_file = tmp_path / ".labctl" / "lock"
    acquired, release = threading.Event(), threading.Event()

    def wait_then_hold() -> None:
        with LabState(tmp_path, LAB_ID).lock(wait=10):
            acquired.set()
            release.wait(10)

    def openers() -> int:
        return sum(1 for fd in Path("/proc/self/fd").iterdir() if os.path.realpath(fd) == str(lock_file))

    waiter = threading.Thread(target=wait_then_hold)
    try:
        with LabState(tmp_path, LAB_ID).lock():
            waiter.start()
            deadline = time.monotonic() + 5
            while openers() < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert openers() == 2  # the waiter has the lock file open
            shutil.rmtree(tmp_path / ".labctl")  # as destroy does, holding the lock
        assert acquired.wait(5)
        assert lock_file.exists()
        with (
            pytest.raises(StateError, match="locked by another labctl"),
            LabState(tmp_path, LAB_ID).lock(0.3),
        ):
            pass
    finally:
        release.set()
        waiter.join(10)
