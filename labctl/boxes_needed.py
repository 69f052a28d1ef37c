"""Which boxes a lab needs that the store does not have yet (for validate, doctor and up)."""

from __future__ import annotations

from typing import Any

from labctl.labfile.models import Lab


def missing_boxes(lab: Lab | Any) -> dict[str, list[str]]:
    """box name -> machines that use it, for every box the store lacks."""
    from labctl.box import BoxStore

    store = BoxStore()
    wanted: dict[str, list[str]] = {}
    for machine in lab.machines:
        if machine.box:
            wanted.setdefault(machine.box, []).append(machine.name)
    return {name: users for name, users in wanted.items() if not store.has(name)}
