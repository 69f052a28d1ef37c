"""A lab's state in .labctl/ beside its labfile (like .vagrant/).

state.json is versioned and written atomically (temp file, fsync, rename). A lock file held with
flock keeps two labctl processes from interleaving changes to one lab; the second waits briefly,
then fails naming the holder's pid.

labctl runs as root in directories that other users may own, so nothing here is taken on trust:
.labctl/ must be a real directory (not a link), and it, state.json and the lock must belong to
the user running labctl and be writable by nobody else; state.json must match the schema in
labctl.state_schema. Anything else is refused with a StateError that says what to check.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import json
import os
import shlex
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from labctl import state_schema
from labctl.errors import StateError
from labctl.labfile.models import ID_DIGITS, LEGACY_ID_DIGITS, Lab
from labctl.paths import STATE_DIR_NAME, lab_owners_dir, remove_file

# 2: the labfile is recorded, and new labs have wide ids (a labctl that reads only format 1
# would take a wide-id lab for one with a short id, and lose its machines).
FORMAT = 2
_NO_FOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC


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


def check_trusted(path: Path, info: os.stat_result, state_dir: Path) -> None:
    """Refuse what another user owns or can write: its content would decide what root does."""
    euid = os.geteuid()
    if info.st_uid != euid:
        raise StateError(
            f"{path} belongs to uid {info.st_uid}, not to uid {euid} that runs labctl",
            f"labctl trusts only state it wrote itself: check what {state_dir} holds, then remove it "
            "(or run labctl as its owner)",
        )
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise StateError(
            f"{path} can be changed by other users (mode {stat.S_IMODE(info.st_mode):04o})",
            f"check what {state_dir} holds, then `chmod -R go-w {state_dir}` (or remove it)",
        )


class LabState:
    """The state directory of one lab. Machine records are plain JSON dicts keyed by name."""

    def __init__(self, lab_root: Path, lab_id: str, labfile: Path | None = None) -> None:
        self.dir = lab_root / STATE_DIR_NAME
        self.lab_id = lab_id
        # Recorded so that a second labfile in the same directory cannot take this state over.
        self.labfile = str(labfile.resolve()) if labfile is not None else None
        self.path = self.dir / "state.json"
        # Drivers of one lab update records from several threads during a parallel `up`.
        self._records_lock = threading.RLock()

    def exists(self) -> bool:
        return self._dir_exists() and self.path.exists()

    def ensure_dir(self) -> Path:
        with contextlib.suppress(FileExistsError):  # a link or a file there is refused below
            self.dir.mkdir(mode=0o700)
        self._dir_exists()
        return self.dir

    def _dir_exists(self) -> bool:
        """Whether .labctl/ exists, after refusing one that is a link or is not ours alone."""
        try:
            info = os.lstat(self.dir)
        except FileNotFoundError:
            return False
        if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
            raise StateError(
                f"{self.dir} is not a directory (a symbolic link or a file)",
                f"labctl keeps state only in a real directory; check where it points, then remove {self.dir}",
            )
        check_trusted(self.dir, info, self.dir)
        return True

    def load(self) -> dict[str, Any]:
        data = self.recorded()
        return self._empty() if data is None else data

    def recorded(self) -> dict[str, Any] | None:
        """The checked content of state.json, or None when there is none."""
        raw = self._read() if self._dir_exists() else None
        if raw is None:
            return None
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise self._corrupt(str(exc)) from exc
        if isinstance(data, dict) and isinstance(data.get("format"), int) and data["format"] > FORMAT:
            raise StateError(
                f"{self.path} was written by a newer labctl (format {data['format']})", "upgrade labctl"
            )
        problems = state_schema.problems(data)
        if problems:
            raise self._corrupt("; ".join(problems[:5]) + ("; ..." if len(problems) > 5 else ""))
        checked: dict[str, Any] = data  # a dict: problems() found none
        return checked

    def _read(self) -> bytes | None:
        """state.json's bytes, never through a link, only from a regular file that is ours."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | _NO_FOLLOW)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise self._corrupt("it is a symbolic link") from exc
            raise StateError(f"cannot read {self.path}: {exc.strerror}") from exc
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise self._corrupt("it is not a regular file")
            check_trusted(self.path, info, self.dir)
            return handle.read()

    def _corrupt(self, why: str) -> StateError:
        return StateError(
            f"{self.path} is corrupt or was not written by labctl: {why}",
            f"labctl will not act on it; check what it names, then move {self.dir} aside "
            "(`labctl destroy` finds the labfile's machines by their names and labels)",
        )

    def save(self, data: dict[str, Any]) -> None:
        self.ensure_dir()
        data["format"] = FORMAT
        data["lab_id"] = self.lab_id
        if self.labfile is not None:
            data["labfile"] = self.labfile
        problems = state_schema.problems(data)
        if problems:  # a labctl bug: the next load would refuse the file
            raise ValueError(f"refusing to write state that labctl could not read back: {problems}")
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

    def replace_machine(self, name: str, **fields: Any) -> None:
        """Start the machine's record afresh (a machine created anew keeps nothing of an old one)."""
        with self._records_lock:
            data = self.load()
            data["machines"][name] = dict(fields)
            self.save(data)

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
        fd = self._locked(time.monotonic() + wait)
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            self._claim()
            yield
        finally:
            os.close(fd)

    def _locked(self, deadline: float) -> int:
        """The lock file, locked. `destroy` removes .labctl/, lock file and all, while holding it:
        a process that was waiting on that file then holds a lock nobody else can see, so it
        starts again with the file now at .labctl/lock (created afresh if need be)."""
        lock_path = self.dir / "lock"
        while True:
            self.ensure_dir()
            fd = self._open_lock(lock_path)
            try:
                self._acquire(fd, deadline)
                if _same_file(fd, lock_path):
                    return fd
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)

    def _claim(self) -> None:
        """Under the lock: refuse state another labfile owns, and record ours in state from
        before labctl recorded it (its first user to change the lab adopts it)."""
        data = self.recorded()
        if data is None or self.labfile is None:
            return
        self.check_owner(data)
        if "labfile" not in data:
            self.save(data)

    def check_owner(self, data: dict[str, Any]) -> None:
        owner = data.get("labfile")
        if owner is not None and owner != self.labfile:
            raise StateError(
                f"{self.dir} belongs to the labfile {owner}, not to {self.labfile}",
                f"labfiles in one directory share .labctl/: destroy that lab first (labctl -f {shlex.quote(owner)} "
                "destroy), or give this labfile a directory of its own",
            )

    def _open_lock(self, lock_path: Path) -> int:
        """The lock file, never through a link (root would create or truncate its target)."""
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NONBLOCK | _NO_FOLLOW, 0o600)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise StateError(
                    f"{lock_path} is a symbolic link",
                    f"labctl never follows links in {self.dir}; check where it points, then remove it",
                ) from exc
            raise StateError(f"cannot open {lock_path}: {exc.strerror}") from exc
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise StateError(f"{lock_path} is not a regular file", "remove it after checking what it is")
            check_trusted(lock_path, info, self.dir)
        except BaseException:
            os.close(fd)
            raise
        return fd

    @staticmethod
    def _acquire(fd: int, deadline: float) -> None:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                    raise StateError(
                        f"the lab is locked by another labctl process (pid {holder})",
                        "wait for it to finish, or stop it; the lock frees itself when it exits",
                    ) from None
                time.sleep(0.1)


def _same_file(fd: int, path: Path) -> bool:
    """Whether fd is the file at path now (not one removed, or replaced, since it was opened)."""
    try:
        now = os.lstat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino)


def bind(lab: Lab) -> Lab:
    """The lab as its .labctl/ knows it: with the id recorded there, once sure that the state
    belongs to this labfile.

    A lab made before ids were widened keeps its short id, since the names of its domains,
    networks, containers and directories hold it; the recorded id is honoured only when this
    labfile's path gives it, so a state file cannot point labctl at another lab's objects.

    Two labfiles in one directory would share .labctl/ (their machines' records, keys and
    lock): the first to write it owns it, and any other labfile is refused until that lab is
    destroyed. State from before labctl recorded the labfile is adopted by the first labfile
    that takes the lab's lock (LabState.lock).
    """
    state = LabState(lab.root, lab.id, lab.file)
    data = state.recorded()
    if data is None:
        check_id_owner(lab)
        return lab
    state.check_owner(data)
    recorded = data["lab_id"]
    for digits in (ID_DIGITS, LEGACY_ID_DIGITS):
        if (candidate := dataclasses.replace(lab, id_digits=digits)).id == recorded:
            check_id_owner(candidate)
            return candidate
    raise StateError(
        f"{state.path} records lab id {recorded}, which this labfile does not give (it gives {lab.id})",
        "the lab was renamed, or its directory moved or reached by another path, since it was made: undo "
        f"that and run `labctl destroy`; or, once nothing of lab {recorded} is left, remove {state.dir}",
    )


def bound_if_possible(lab: Lab) -> Lab:
    """bind(lab), or lab as loaded when its state is refused: for verbs that only report."""
    try:
        return bind(lab)
    except StateError:
        return lab


# -- one labfile per lab id ---------------------------------------------------------------------
# Ids are a hash of the lab's directory: 48 bits make a chance collision negligible, but a
# directory could be searched for that gives another lab's id. Every name labctl gives a lab's
# objects holds the id, so the first labfile to bring a lab up owns the id until it is destroyed.


def check_id_owner(lab: Lab) -> None:
    """Refuse a lab whose id another labfile has claimed."""
    marker = lab_owners_dir() / lab.id
    try:
        owner = marker.read_text().strip()
    except FileNotFoundError:
        return
    if owner != str(lab.file.resolve()):
        raise StateError(
            f"lab id {lab.id} is taken by the lab of {owner}: two lab directories give the same id",
            f"rename this lab (name: in the labfile); or, if that lab is gone, remove {marker}",
        )


def claim_id(lab: Lab) -> None:
    """Record this labfile as the owner of its lab id (a no-op when it is already)."""
    check_id_owner(lab)
    marker = lab_owners_dir() / lab.id
    if not marker.exists():
        marker.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        atomic_write(marker, f"{lab.file.resolve()}\n".encode(), 0o600)


def release_id(lab: Lab) -> None:
    remove_file(lab_owners_dir() / lab.id, lab_owners_dir())
