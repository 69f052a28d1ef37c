"""Which accelerator a VM runs on: KVM when the host can run KVM guests, else TCG emulation.

`accel: auto` falls back to TCG with one notice per run; `accel: kvm` on a host without KVM is a
HostError raised before anything is created; `accel: tcg` always emulates.
"""

from __future__ import annotations

import enum
import threading
from dataclasses import dataclass

from labctl import console, host
from labctl.errors import HostError
from labctl.labfile.models import Accel


class Engine(enum.StrEnum):
    KVM = "kvm"
    TCG = "tcg"

    @property
    def domain_type(self) -> str:
        """libvirt's <domain type=...>: 'kvm' runs on KVM, 'qemu' is TCG emulation."""
        return "kvm" if self is Engine.KVM else "qemu"


@dataclass(frozen=True)
class Choice:
    engine: Engine
    reason: str


_lock = threading.Lock()
_noticed: set[str] = set()


def kvm_available(uri: str) -> tuple[bool, str]:
    """Whether the host behind uri runs KVM guests, and why (not)."""
    from labctl.placement import is_remote

    if not is_remote(uri):  # /proc/cpuinfo and /dev/kvm tell the truth
        return host.kvm_usable()
    return _remote_kvm(uri)


def _remote_kvm(uri: str) -> tuple[bool, str]:
    import xml.etree.ElementTree as ET

    from labctl.libvirt_util import connect, libvirt_errors

    conn = connect(uri)
    with libvirt_errors(f"cannot read the capabilities of {uri}"):
        caps = ET.fromstring(conn.getCapabilities())  # noqa: S314 - from libvirtd
    # libvirt lists a kvm domain type whenever /dev/kvm exists, even where the CPU lacks
    # hardware virtualization and guests die with "KVM internal error"; ask for the flag too.
    flags = {f.get("name") for f in caps.iterfind("host/cpu/feature")}
    if not flags & {"vmx", "svm"}:
        return False, f"the CPU of {uri} has no vmx/svm flag (no hardware virtualization)"
    if not any(d.get("type") == "kvm" for d in caps.iterfind("guest/arch/domain")):
        return False, f"{uri} offers no KVM domain type"
    return True, f"{uri} offers KVM"


def choose(accel: Accel, uri: str) -> Choice:
    """The engine for a machine's `accel:` setting; raises HostError for kvm without KVM."""
    if accel is Accel.TCG:
        return Choice(Engine.TCG, "accel: tcg")
    usable, why = kvm_available(uri)
    if usable:
        return Choice(Engine.KVM, why)
    if accel is Accel.KVM:
        raise HostError(
            f"accel: kvm, but this host cannot run KVM guests: {why}",
            "use accel: auto or accel: tcg to emulate (much slower), or run the lab on a host with KVM",
        )
    return Choice(Engine.TCG, why)


def notice_once(choice: Choice, uri: str) -> None:
    """Tell the user once per run that `accel: auto` VMs will be emulated, and why."""
    if choice.engine is Engine.KVM or choice.reason == "accel: tcg":
        return
    with _lock:
        if uri in _noticed:
            return
        _noticed.add(uri)
    console.notice(f"VMs will be emulated with TCG (much slower than KVM): {choice.reason}")
