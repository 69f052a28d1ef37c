"""The timed phases of a container create: durations, and host errors named by their phase."""

from __future__ import annotations

import errno
import os

import pytest

from labctl.drivers.containers import Phases
from labctl.errors import DriverError


def test_phases_record_each_phase_as_it_starts_and_its_duration() -> None:
    started: list[str] = []
    phases = Phases(started.append)
    with phases("config"):
        pass
    with phases("start"):
        pass
    assert started == ["config", "start"]
    assert set(phases.done) == {"config", "start"}


def test_a_full_disk_in_a_phase_names_the_phase_and_what_to_free() -> None:
    phases = Phases()
    with pytest.raises(DriverError) as caught, phases("config"):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert caught.value.message == "phase 'config' failed: No space left on device"
    assert caught.value.hint is not None and "df -h" in caught.value.hint
    assert isinstance(caught.value.__cause__, OSError)
    assert "config" in phases.done


def test_another_host_error_names_the_phase_and_the_file() -> None:
    denied = r"^phase 'rootfs' failed: Permission denied: /x$"
    with pytest.raises(DriverError, match=denied), Phases()("rootfs"):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), "/x")
