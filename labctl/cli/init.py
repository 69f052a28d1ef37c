"""labctl init: write a commented starter labfile (never overwrites)."""

from __future__ import annotations

import argparse
import os
import shlex
from pathlib import Path

from labctl.errors import UsageError

STARTER = """\
# labctl labfile: one file describes the whole lab. `labctl validate` checks it,
# `labctl up` creates it, `labctl destroy` removes every trace of it.
name: {name}

# Applied to every machine unless the machine sets the key itself.
defaults:
  box: debian-12            # build it once with: labctl box build debian-12
  memory: 512M              # sizes: 512M, 1G, 1536MiB ...
  cpus: 1

networks:
  lan:
    cidr: 10.213.7.0/24     # the host is .1 (gateway, DHCP and DNS for the lab)
    mode: isolated          # isolated: no route out | nat: masquerade to the host's uplink

machines:
  vm1:
    kind: vm                # a KVM/QEMU virtual machine (TCG emulation without KVM)
    devices: paravirtual    # paravirtual (virtio) | emulated (e1000 NIC, SATA disk)
    disk: 8G
    # libvirt_uri: qemu+ssh://root@lab-host/system   # run it on another host (not with containers on its network)
    networks: [lan]
    provision:
      - shell: echo "hello from $(hostname)" > /etc/motd

  ct1:
    kind: lxc               # an LXC system container running systemd
    networks:
      - {{name: lan, ip: 10.213.7.20}}

  probe:
    kind: ns                # a container made of exactly these namespaces (runc)
    namespaces: [pid, net, uts, ipc, mnt]
    command: [sleep, infinity]
    networks: [lan]
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", help="the lab's name (default: this directory's name)")
    parser.add_argument(
        "--lab", metavar="NAME", help="copy the course lab NAME instead (labctl labs lists them)"
    )
    parser.add_argument(
        "directory", nargs="?", metavar="DIR", help="with --lab: where to copy it (default: ./NAME)"
    )


def run(args: argparse.Namespace) -> int:
    if args.lab is not None:
        return _copy_lab(args)
    if args.directory is not None:
        raise UsageError(
            f"DIR ({args.directory}) goes with --lab only",
            "labctl init -f PATH writes a starter labfile at PATH",
        )
    from labctl.labfile import find
    from labctl.labfile.values import default_lab_name, name

    path = find(args.file)
    lab_name = args.name or default_lab_name(path.parent.name)
    try:
        name(lab_name, "lab name", 40)
    except ValueError as exc:
        raise UsageError(f"--name: {exc}") from None
    _write_new(path, STARTER.format(name=lab_name))
    print(f"wrote {os.path.relpath(path)}; next: labctl validate, then labctl up")
    return 0


def _write_new(path: Path, text: str) -> None:
    try:
        with open(path, "x", encoding="utf-8") as handle:
            handle.write(text)
    except FileExistsError:
        raise UsageError(
            f"{path} already exists; labctl init never overwrites a labfile",
            "remove it first, or give another path with -f",
        ) from None
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None


def _copy_lab(args: argparse.Namespace) -> int:
    from labctl import catalogue

    if args.name is not None or args.file is not None:
        raise UsageError(
            "--lab copies the lab with its own labfile and name; --name and -f do not go with it",
            "give the directory to copy it into as the last argument: labctl init --lab NAME DIR",
        )
    target = Path(args.directory if args.directory is not None else args.lab).absolute()
    catalogue.copy(args.lab, target)
    shown = os.path.relpath(target)
    print(f"copied the course lab {args.lab} into {shown}; next:")
    print(f"  cd {shlex.quote(shown)}")
    print("  labctl up          # create the lab's machines")
    print("  labctl check       # what is still to do: the lesson's checks, failing until you act")
    print("  then read README.md and follow the lesson; labctl destroy removes everything at the end")
    return 0
