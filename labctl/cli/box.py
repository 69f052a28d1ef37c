"""`labctl box`: build, add, list, export and remove boxes."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from labctl.errors import EXIT_OK, EXIT_USAGE, UsageError


def configure(parser: argparse.ArgumentParser) -> None:
    subs = parser.add_subparsers(dest="box_command", metavar="COMMAND", parser_class=type(parser))
    build = subs.add_parser("build", help="build a box from its recipe in boxes/")
    build.add_argument("name", metavar="NAME")
    build.add_argument("--mirror", metavar="URL", help="Debian mirror (default: debootstrap's)")
    build.add_argument("--force", action="store_true", help="replace the box if it is already built")

    listing = subs.add_parser("list", help="show the boxes in the store")
    # SUPPRESS: an explicit False here would overwrite `labctl --json box list`.
    listing.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="JSON output")

    remove = subs.add_parser("remove", help="remove a box from the store")
    remove.add_argument("name", metavar="NAME")
    remove.add_argument("--force", action="store_true", help="remove it even while labs use it")

    prune = subs.add_parser(
        "prune", help="remove uploaded boxes that no VM uses from labctl's pool on a remote libvirt host"
    )
    prune.add_argument(
        "--libvirt-uri", metavar="URI", required=True, help="e.g. qemu+ssh://root@lab-host/system"
    )

    export = subs.add_parser("export", help="write a box to one archive file")
    export.add_argument("name", metavar="NAME")
    export.add_argument("file", metavar="FILE")

    add = subs.add_parser("add", help="import an exported box or a qcow2 cloud image")
    add.add_argument("name", metavar="NAME")
    add.add_argument("source", metavar="FILE|URL")
    add.add_argument("--sha256", metavar="HEX", required=True, help="checksum of FILE or of what URL returns")
    add.add_argument("--force", action="store_true", help="replace the box if it is already in the store")


def run(args: argparse.Namespace) -> int:
    command = getattr(args, "box_command", None)
    if command is None:
        print(
            "usage: labctl box {build,list,remove,prune,export,add} ...  (labctl box --help)", file=sys.stderr
        )
        return EXIT_USAGE
    handlers = {
        "build": _build,
        "list": _list,
        "remove": _remove,
        "prune": _prune,
        "export": _export,
        "add": _add,
    }
    handler = handlers[command]
    return handler(args)


def _build(args: argparse.Namespace) -> int:
    from labctl import console
    from labctl.box import BoxStore
    from labctl.box.build import build_box

    if args.mirror and not args.mirror.startswith(("http://", "https://", "file:/")):
        raise UsageError(f"--mirror {args.mirror!r} is not a URL", "give an http://, https:// or file:/ URL")
    box = build_box(BoxStore(), args.name, mirror=args.mirror, force=args.force)
    console.info(f"box {box.name} {box.version} is in {box.path} ({_size(box.size)})")
    return EXIT_OK


def _list(args: argparse.Namespace) -> int:
    import json

    from labctl import console
    from labctl.box import BoxStore

    boxes = BoxStore().list()
    if getattr(args, "json", False):
        print(json.dumps([_summary(b) for b in boxes], indent=2))
        return EXIT_OK
    rows = [
        [b.name, b.version, _size(b.size), str(b.meta.get("built", "")), ",".join(b.kinds)] for b in boxes
    ]
    if rows:
        print(console.table(["name", "version", "size", "built", "kinds"], rows))
    else:
        console.info("no boxes yet; build one with: labctl box build debian-12")
    return EXIT_OK


def _summary(box: Any) -> dict[str, Any]:
    return {
        "name": box.name, "version": box.version, "path": str(box.path), "size": box.size,
        "built": box.meta.get("built"), "kinds": box.kinds, "sha256": box.sha256,
    }  # fmt: skip


def _remove(args: argparse.Namespace) -> int:
    from labctl import console
    from labctl.box import BoxStore

    BoxStore().remove(args.name, force=args.force)
    console.info(f"removed box {args.name}")
    return EXIT_OK


def _prune(args: argparse.Namespace) -> int:
    from labctl import console
    from labctl.drivers.vm import volumes
    from labctl.libvirt_util import connect

    pool = volumes.existing_pool(connect(args.libvirt_uri))
    removed, kept = volumes.prune_boxes(pool) if pool is not None else ([], [])
    for stem in removed:
        console.info(f"removed {stem}")
    for stem in kept:
        console.info(f"kept {stem}: VMs there are backed by it")
    if not removed and not kept:
        console.info(f"no uploaded boxes at {args.libvirt_uri}")
    return EXIT_OK


def _export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from labctl import console
    from labctl.box import BoxStore
    from labctl.box.archive import export_box

    store = BoxStore()
    digest = export_box(store.get(args.name), Path(args.file))
    console.info(f"wrote {args.file}")
    print(f"sha256 {digest}  {args.file}")
    return EXIT_OK


def _add(args: argparse.Namespace) -> int:
    from labctl import console
    from labctl.box import BoxStore
    from labctl.box.archive import add_box

    box = add_box(BoxStore(), args.name, args.source, args.sha256, force=args.force)
    console.info(f"box {box.name} {box.version} is in {box.path} (serves {', '.join(box.kinds)})")
    return EXIT_OK


def _size(size: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024  # type: ignore[assignment]
    return str(size)
