"""Boxes: the root file systems every machine starts from.

    from labctl.box import BoxStore, Box
    store = BoxStore()                 # paths.box_store(); BoxStore(path) in tests
    box = store.get("debian-12")       # BoxError with a `labctl box build` hint when missing
    box.rootfs, box.disk, box.kernel, box.initrd, box.cmdline, box.meta, box.sha256

Building (labctl.box.build), import and export (labctl.box.archive) are imported on demand:
they are only needed by `labctl box`.
"""

from __future__ import annotations

from labctl.box.recipe import validate_name
from labctl.box.store import Box, BoxStore

__all__ = ["Box", "BoxStore", "validate_name"]
