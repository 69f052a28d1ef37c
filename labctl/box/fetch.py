"""Getting a box file (local path or http/https/file URL) into the store's staging area.

The checksum is computed while copying, and the copy, not the source, is what gets unpacked:
a source that changes after it was checked cannot slip anything past the check.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import IO

from labctl import console, run
from labctl.errors import BoxError, UsageError

SCHEMES = ("http", "https", "file")
QCOW2_MAGIC = b"QFI\xfb"
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


def check_sha256(text: str) -> str:
    if not _HEX64.fullmatch(text):
        raise UsageError(
            f"--sha256 {text!r} is not a SHA-256 checksum", "give the 64 hex digits of sha256sum"
        )
    return text.lower()


def fetch_verified(source: str, dest: Path, expected: str) -> None:
    """Copy source to dest and refuse (deleting dest) unless its SHA-256 is the expected one."""
    with console.step(f"fetching {source}"):
        actual = _fetch(source, dest)
    if not hmac.compare_digest(actual, expected):
        dest.unlink(missing_ok=True)
        raise BoxError(
            f"checksum mismatch for {source}: expected {expected}, got {actual}",
            "the file is damaged or not the one you meant; nothing was stored",
        )


def _fetch(source: str, dest: Path) -> str:
    scheme = urllib.parse.urlsplit(source).scheme
    if scheme in SCHEMES:
        try:
            # S310: the scheme is checked against SCHEMES just above.
            with urllib.request.urlopen(source, timeout=60) as response:  # noqa: S310
                return _copy(response, dest)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise BoxError(f"cannot download {source}: {exc}", "check the URL and the network") from exc
    if scheme and len(scheme) > 1:
        raise UsageError(
            f"cannot fetch {source}: unsupported scheme {scheme}", "use a file path or an http(s) URL"
        )
    path = Path(source)
    if not path.is_file():
        raise BoxError(f"{source} is not a file", "give the path of an exported box or a qcow2 image")
    with open(path, "rb") as stream:
        return _copy(stream, dest)


def _copy(stream: IO[bytes], dest: Path) -> str:
    digest = hashlib.sha256()
    with open(dest, "wb") as out:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def is_qcow2(path: Path) -> bool:
    with open(path, "rb") as stream:
        return stream.read(4) == QCOW2_MAGIC


def check_qcow2(path: Path) -> None:
    """A box disk must stand alone: a backing or data file could name any file on the host."""
    info = json.loads(run.run(["qemu-img", "info", "--output=json", "-f", "qcow2", path]).stdout)
    if info.get("format") != "qcow2":
        raise BoxError(f"{path.name} is not a qcow2 image")
    if "backing-filename" in info or "data-file" in info.get("format-specific", {}).get("data", {}):
        raise BoxError(f"{path.name} refers to another file (backing or data file); a box disk must not")
    run.run(["qemu-img", "check", "-q", "-f", "qcow2", path], hint="the image is corrupt")
