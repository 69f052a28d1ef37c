"""Internal qcow2 snapshots of a VM through libvirt (disk and, when running, memory).

The overlay is qcow2, so snapshots live inside it; the seed CD-ROM is read-only and marked
snapshot='no' in the domain XML, so libvirt leaves it out.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

from labctl import templating
from labctl.errors import DriverError, UsageError
from labctl.labfile.models import Machine
from labctl.libvirt_util import is_missing, libvirt_errors

TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


def check_tag(tag: str) -> str:
    if not TAG.fullmatch(tag):
        raise UsageError(
            f"invalid snapshot name {tag!r}",
            "use letters, digits, '.', '_' and '-', starting with a letter or digit (at most 63)",
        )
    return tag


def _lookup(dom: Any, machine: Machine, tag: str) -> Any:
    import libvirt

    try:
        return dom.snapshotLookupByName(check_tag(tag), 0)
    except libvirt.libvirtError as exc:
        if is_missing(exc):
            known = ", ".join(names(dom)) or "none"
            raise DriverError(f"vm {machine.name} has no snapshot {tag!r} (snapshots: {known})") from exc
        raise DriverError(
            f"cannot find snapshot {tag!r} of vm {machine.name}: {exc.get_error_message()}"
        ) from exc


def save(dom: Any, machine: Machine, tag: str) -> None:
    if check_tag(tag) in names(dom):
        raise DriverError(
            f"vm {machine.name} already has a snapshot {tag!r}",
            f"delete it first (labctl snapshot delete {tag}) or choose another name",
        )
    xml = templating.render("libvirt/snapshot.xml.j2", tag=tag, machine=machine.name)
    with libvirt_errors(f"cannot snapshot vm {machine.name}"):
        dom.snapshotCreateXML(xml, 0)


def restore(dom: Any, machine: Machine, tag: str) -> None:
    snapshot = _lookup(dom, machine, tag)
    with libvirt_errors(f"cannot restore snapshot {tag!r} of vm {machine.name}"):
        dom.revertToSnapshot(snapshot, 0)


def delete(dom: Any, machine: Machine, tag: str) -> None:
    snapshot = _lookup(dom, machine, tag)
    with libvirt_errors(f"cannot delete snapshot {tag!r} of vm {machine.name}"):
        snapshot.delete(0)


def names(dom: Any) -> list[str]:
    """Snapshot names, oldest first."""
    with libvirt_errors(f"cannot list the snapshots of {dom.name()}"):
        snapshots = dom.listAllSnapshots(0)
        created = [(_creation_time(s.getXMLDesc(0)), s.getName()) for s in snapshots]
    return [name for _, name in sorted(created)]


def _creation_time(xml: str) -> int:
    element = ET.fromstring(xml).find("creationTime")  # noqa: S314 - from our libvirtd
    return int(element.text or 0) if element is not None else 0
