"""The debian-12 box for integration tests: built at most once per host and recipe.

The box lives in the real store (paths.box_store()) rather than a temporary one, so a second test
run, or another engineer's tests, reuse it. It is rebuilt only when the recipe changed, which
box.json records as recipe_sha256. Imported by tests/conftest.py.
"""

from __future__ import annotations

import os
import time
import warnings

import pytest

from labctl.box import Box, BoxStore
from labctl.errors import BoxError

BOX = "debian-12"
BUILD_WAIT = 30 * 60  # seconds to wait when another process builds the same box


def _current(store: BoxStore, recipe_sha256: str) -> Box | None:
    if not store.has(BOX):
        return None
    box = store.get(BOX)
    return box if box.meta.get("recipe_sha256") == recipe_sha256 else None


@pytest.fixture(scope="session")
def debian_box() -> Box:
    """The debian-12 Box, built from the current recipe if the store lacks it."""
    if os.geteuid() != 0:
        pytest.skip("building the debian-12 box needs root")
    from labctl.box.build import build_box
    from labctl.box.recipe import load_recipe

    store = BoxStore()
    recipe_sha256 = load_recipe(BOX).sha256
    deadline = time.monotonic() + BUILD_WAIT
    while True:
        box = _current(store, recipe_sha256)
        if box is not None:
            return box
        if store.has(BOX) and store.users(BOX):
            # Rebuilding would pull the disk from under running labs (their overlays name it).
            warnings.warn(
                f"{BOX} is older than its recipe but in use by labs: testing the old box", stacklevel=1
            )
            return store.get(BOX)
        try:
            return build_box(store, BOX, force=True)
        except BoxError as exc:
            # Another test process is building it right now: wait for its result.
            if "another labctl" not in exc.message or time.monotonic() > deadline:
                raise
            time.sleep(10)
