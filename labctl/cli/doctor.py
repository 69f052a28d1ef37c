"""labctl doctor: can this host run the lab? Every probe, with what to do when one fails."""

from __future__ import annotations

import argparse
import ipaddress
import json

from labctl import console
from labctl.errors import EXIT_FAILURE, EXIT_OK, LabfileError
from labctl.host import Check, Status
from labctl.labfile.models import Lab


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = "Without a labfile in reach, only the host is checked."


def run(args: argparse.Namespace) -> int:
    checks = host_checks()
    lab = _lab_if_any(args)
    if lab is not None:
        checks += lab_checks(lab)
    if args.json:
        print(json.dumps([c.__dict__ for c in checks], indent=2))
    else:
        _print(checks)
    return EXIT_FAILURE if any(c.status is Status.FAIL for c in checks) else EXIT_OK


def host_checks(uri: str = "qemu:///system") -> list[Check]:
    from labctl import host

    return [
        host.check_kvm(),
        host.check_libvirt(uri),
        host.check_program("lxc", "lxc-start", ["lxc-start", "--version"]),
        _runtime_check(),
        host.check_program("qemu-img", "qemu-img", ["qemu-img", "--version"]),
        host.check_program("debootstrap", "debootstrap", ["debootstrap", "--version"]),
        host.check_cgroups(),
        host.check_overlayfs(),
        host.check_subids(),
        host.check_link_support(),
    ]


def _runtime_check() -> Check:
    from labctl import host

    try:
        from labctl.drivers.ns import runtime_name  # type: ignore[attr-defined,unused-ignore]

        name = str(runtime_name())
    except (ImportError, AttributeError):
        name = "runc"
    check = host.check_program("oci runtime", name, [name, "--version"])
    return Check(check.name, check.status, f"{check.detail} (used for ns machines)", check.hint)


def lab_checks(lab: Lab) -> list[Check]:
    checks = [_memory_check(lab), _disk_check(lab), _subnet_check(lab), _box_check(lab)]
    return checks + _remote_checks(lab)


def _remote_checks(lab: Lab) -> list[Check]:
    """For each remote libvirt host of the lab: libvirt, its accelerator, and the SSH way in."""
    from labctl import accel, host, placement

    checks: list[Check] = []
    for uri in placement.uris(lab):
        if not placement.is_remote(uri):
            continue
        libvirt = host.check_libvirt(uri)
        checks.append(libvirt)
        if libvirt.status is Status.FAIL:
            continue
        usable, why = accel.kvm_available(uri)
        checks.append(Check("kvm (remote)", Status.OK if usable else Status.WARN, why))
        checks.append(_jump_check(uri))
    return checks


def _jump_check(uri: str) -> Check:
    """Whether labctl can reach the guests through the host's sshd (as `up` will)."""
    from labctl import sshjump
    from labctl.errors import LabctlError

    try:
        jump = sshjump.for_uri(uri)
        if jump is not None:
            sshjump.login(jump)
    except LabctlError as exc:
        return Check("ssh to guests", Status.FAIL, exc.message, exc.hint)
    return Check("ssh to guests", Status.OK, f"through {jump}")


def _lab_if_any(args: argparse.Namespace) -> Lab | None:
    from labctl.labfile import find, load_lab

    if args.file is None and not find(None).exists():
        return None
    from labctl.state import bound_if_possible

    try:
        return bound_if_possible(load_lab(args.file))  # its own bridge names, for a lab with a short id
    except LabfileError:
        console.warn("the labfile has problems (labctl validate lists them); checking the host only")
        return None


def _memory_check(lab: Lab) -> Check:
    from labctl.host import free_memory

    total = sum(m.memory for m in lab.machines)
    free = free_memory()
    status = Status.OK if total <= free else Status.FAIL
    detail = f"the lab asks for {human_size_approx(total)}, {human_size_approx(free)} available"
    return Check("memory", status, detail, None if status is Status.OK else "lower memory: in the labfile")


def _disk_check(lab: Lab) -> Check:
    from labctl.host import free_disk
    from labctl.paths import labctl_home

    # Overlays start near-empty; the labfile's disk sizes are the worst case they can grow to.
    total = sum(m.disk or 0 for m in lab.machines) + sum(512 * 1024**2 for m in lab.machines)
    free = free_disk(labctl_home())
    status = Status.OK if total <= free else Status.WARN
    detail = f"worst case {human_size_approx(total)} in {labctl_home()}, {human_size_approx(free)} free"
    return Check("disk", status, detail)


def _subnet_check(lab: Lab) -> Check:
    from labctl.addressing import bridge_name
    from labctl.host import host_routes

    collisions = []
    for network in lab.networks:
        own = bridge_name(lab, network)
        for dst, dev in host_routes():
            if dev != own and network.cidr.overlaps(ipaddress.IPv4Network(dst, strict=False)):
                collisions.append(f"{network.name} {network.cidr} overlaps {dst} on {dev}")
    if collisions:
        return Check("subnets", Status.FAIL, "; ".join(collisions), "choose another cidr: in the labfile")
    return Check("subnets", Status.OK, "no lab subnet collides with a host route")


def _box_check(lab: Lab) -> Check:
    from labctl.boxes_needed import missing_boxes

    missing = missing_boxes(lab)
    if not missing:
        return Check("boxes", Status.OK, "every box the lab uses is in the store")
    names = " ".join(missing)
    commands = "; ".join(f"labctl box build {n}" for n in missing)
    return Check("boxes", Status.FAIL, f"not in the store: {names}", commands)


def human_size_approx(n: int) -> str:
    for unit, power in (("T", 4), ("G", 3), ("M", 2)):
        if n >= 1024**power:
            return f"{n / 1024**power:.1f}{unit}"
    return f"{n // 1024}K"


def _print(checks: list[Check]) -> None:
    marks = {Status.OK: "ok  ", Status.WARN: "warn", Status.FAIL: "FAIL"}
    width = max(len(c.name) for c in checks)
    for check in checks:
        print(f"{marks[check.status]}  {check.name.ljust(width)}  {check.detail}")
        if check.hint and check.status is not Status.OK:
            print(f"      {' ' * width}  hint: {check.hint}")
