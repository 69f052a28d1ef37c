"""A lab's state in .labctl/ beside its labfile (like .vagrant/).

state.json is versioned and written atomically (temp file, fsync, rename). A lock file held with
flock keeps two labctl processes from interleaving changes to one lab; the second waits briefly,
then fails naming the holder's pid.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from labctl.errors import StateError
from labctl.paths import STATE_DIR_NAME

FORMAT = 1


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write data to path so that readers see the old or the new content, never a mix."""
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        temp.chmod(mode)
        temp.replace(path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class LabState:
    """The state directory of one lab. Machine records are plain JSON dicts keyed by name."""

    def __init__(self, lab_root: Path, lab_id: str) -> None:
        self.dir = lab_root / STATE_DIR_NAME
        self.lab_id = lab_id
        self.path = self.dir / "state.json"
        # Drivers of one lab update records from several threads during a parallel `up`.
        self._records_lock = threading.RLock()

    def exists(self) -> bool:
        return self.path.exists()

    def ensure_dir(self) -> Path:
        self.dir.mkdir(mode=0o700, exist_ok=True)
        return self.dir

    def load(self) -> dict[str, Any]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return self._empty()
        except OSError as exc:
            raise StateError(f"cannot read {self.path}: {exc.strerror}") from exc
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise StateError(
                f"{self.path} is corrupt: {exc}",
                "move it aside; `labctl destroy` finds machines by their labels",
            ) from exc
        if not isinstance(data, dict) or not isinstance(data.get("format"), int):
            raise StateError(f"{self.path} is not a labctl state file")
        if data["format"] > FORMAT:
            raise StateError(
                f"{self.path} was written by a newer labctl (format {data['format']})", "upgrade labctl"
            )
        data.setdefault("machines", {})
        return data

    def save(self, data: dict[str, Any]) -> None:
        self.ensure_dir()
        data["format"] = FORMAT
        data["lab_id"] = self.lab_id
        atomic_write(self.path, json.dumps(data, indent=2, sort_keys=True).encode() + b"\n", 0o600)

    def machines(self) -> dict[str, dict[str, Any]]:
        machines: dict[str, dict[str, Any]] = self.load()["machines"]
        return machines

    def update_machine(self, name: str, **fields: Any) -> dict[str, Any]:
        """Merge fields into the machine's record and save; returns the new record."""
        with self._records_lock:
            data = self.load()
            record = data["machines"].setdefault(name, {})
            record.update(fields)
            self.save(data)
            return dict(record)

    def forget_machine(self, name: str) -> None:
        with self._records_lock:
            data = self.load()
            if data["machines"].pop(name, None) is not None:
                self.save(data)

    def _empty(self) -> dict[str, Any]:
        return {"format": FORMAT, "lab_id": self.lab_id, "machines": {}}

    @contextlib.contextmanager
    def lock(self, wait: float = 5.0) -> Iterator[None]:
        """Hold the lab lock; wait up to `wait` seconds, then fail naming the holder."""
        self.ensure_dir()
        lock_path = self.dir / "lock"
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            self._acquire(fd, lock_path, wait)
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            yield
        finally:
            os.close(fd)

    @staticmethod
    def _acquire(fd: int, lock_path: Path, wait: float) -> None:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = lock_path.read_text().strip() or "unknown"
                    raise StateError(
                        f"the lab is locked by another labctl process (pid {holder})",
                        "wait for it to finish, or stop it; the lock frees itself when it exits",
                    ) from None
                time.sleep(0.1)
