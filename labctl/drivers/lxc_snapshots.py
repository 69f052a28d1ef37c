"""Snapshots of an LXC machine: copies of its overlay upper dir, the only part that changes.

The box below is shared and read-only, so a copy of upper/ is the machine's whole state on disk.
`cp -a` keeps owners, modes, xattrs (overlay's opaque-dir marks) and whiteouts (0:0 devices).
"""

from __future__ import annotations

import re
from pathlib import Path

from labctl.errors import DriverError, UsageError
from labctl.paths import inside, remove_tree
from labctl.run import run

TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class Snapshots:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.upper = directory / "upper"
        self.root = directory / "snapshots"

    def path(self, tag: str) -> Path:
        if not TAG.fullmatch(tag):
            raise UsageError(
                f"bad snapshot tag {tag!r}", "use letters, digits, '.', '_' and '-' (at most 64)"
            )
        return inside(self.root, tag)

    def require(self, tag: str) -> Path:
        path = self.path(tag)
        if not path.is_dir():
            raise DriverError(f"no snapshot {tag!r}", "list them with: labctl snapshot list")
        return path

    def tags(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    def save(self, tag: str) -> None:
        target = self.path(tag)
        if target.exists():
            raise DriverError(f"snapshot {tag!r} exists", f"delete it first: labctl snapshot delete {tag}")
        if not self.upper.is_dir():
            raise DriverError(f"{self.directory.name} has no upper dir", "create the machine: labctl up")
        self.root.mkdir(mode=0o700, exist_ok=True)
        partial = self.root / f".{tag}.partial"  # a copy cut short never looks like a snapshot
        remove_tree(partial, self.directory)
        run(["cp", "-a", "--reflink=auto", self.upper, partial])
        partial.rename(target)

    def restore(self, tag: str) -> None:
        source = self.require(tag)
        staged = self.directory / ".upper.restoring"
        remove_tree(staged, self.directory)
        run(["cp", "-a", "--reflink=auto", source, staged])
        remove_tree(self.upper, self.directory)
        staged.rename(self.upper)
        # Stale overlay state from the old upper dir (liblxc 5 puts the work dir beside upper/).
        remove_tree(self.directory / "work", self.directory)

    def delete(self, tag: str) -> None:
        remove_tree(self.require(tag), self.root)
