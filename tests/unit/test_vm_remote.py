"""A VM on a remote libvirt host is refused before anything is created, with the reason."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from labctl.drivers import LabContext, driver_for
from labctl.errors import HostError
from labctl.labfile import load_lab
from labctl.labfile.models import Kind


def test_remote_libvirt_uri_is_refused_in_check_host(write_labfile: Callable[[str], Path]) -> None:
    write_labfile(
        "machines: {v: {kind: vm, box: debian-12, libvirt_uri: 'qemu+ssh://root@lab-host/system'}}\n"
    )
    lab = load_lab(None)
    driver = driver_for(Kind.VM, LabContext(lab))
    with pytest.raises(
        HostError, match=r"remote libvirt hosts \(qemu\+ssh://root@lab-host/system\) are not supported"
    ):
        driver.check_host(lab.machines)
