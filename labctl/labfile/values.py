"""Parsers for single labfile values: names, sizes, counts, addresses. Each returns the parsed
value or raises ValueError with the message the user sees after the key path."""

from __future__ import annotations

import ipaddress
import re
from decimal import Decimal
from typing import Any

from labctl.labfile.loader import kind_of

# Used with fullmatch: `$` would also match before a final newline ('web\n' is no name).
DNS_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
GROUP_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_SIZE = re.compile(r"[ \t]*(\d{1,15}(?:\.\d{1,9})?)[ \t]*([KMGT]?)(i?)(B?)[ \t]*", re.IGNORECASE)
_UNITS = {"": 0, "K": 1, "M": 2, "G": 3, "T": 4}


def name(value: Any, what: str = "name", max_length: int = 63) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a {what} (a DNS label such as web-1), got {kind_of(value)}")
    if not DNS_LABEL.fullmatch(value) or len(value) > max_length:
        raise ValueError(
            f"{shown(value)} is not a valid {what}: use 1-{max_length} lowercase letters, digits and "
            "hyphens, starting and ending with a letter or digit"
        )
    return value


def size(value: Any) -> int:
    """'512M', '1G', '1536MiB', '2GB' -> bytes. K/M/G/T and KiB/MiB... are binary, KB/MB/GB decimal."""
    example = "expected a size like 512M or 2G"
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError(f"{example}, got {kind_of(value)}")
    if isinstance(value, int):
        raise ValueError(f"{example}, got the bare number {value} (add a unit: {value}M?)")
    match = _SIZE.fullmatch(value)
    if not match:
        raise ValueError(f"{example}, got {shown(value)}")
    number, unit, binary, byte = match.groups()
    decimal = bool(byte) and not binary and unit != ""
    base = 1000 if decimal else 1024
    # Decimal, not float: '1.1G' is exact and no number of digits the pattern allows overflows.
    return int(Decimal(number) * base ** _UNITS[unit.upper()])


_DURATION = re.compile(r"[ \t]*(\d{1,9}(?:\.\d{1,3})?)[ \t]*(ms|s|m|h)?[ \t]*")
_DURATION_UNITS = {
    "ms": Decimal("0.001"),
    "s": Decimal(1),
    "m": Decimal(60),
    "h": Decimal(3600),
    None: Decimal(1),
}


def duration(value: Any, low: float, high: float) -> float:
    """'500ms', '10s', '2m', '1h' or a bare number of seconds -> seconds, from low to high."""
    example = "expected a duration like 500ms, 10s or 2m"
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"{example}, got {kind_of(value)}")
    match = _DURATION.fullmatch(str(value)) if not isinstance(value, float) else None
    if isinstance(value, float):
        seconds = value
    elif match is None:
        raise ValueError(f"{example}, got {shown(str(value))}")
    else:
        seconds = float(Decimal(match.group(1)) * _DURATION_UNITS[match.group(2)])
    if not low <= seconds <= high:
        raise ValueError(f"must be from {low:g} s to {high:g} s, got {seconds:g} s")
    return seconds


def human_size(n: int) -> str:
    for unit, power in (("T", 4), ("G", 3), ("M", 2), ("K", 1)):
        if n >= 1024**power and n % 1024**power == 0:
            return f"{n // 1024**power}{unit}"
    return f"{n}B"


def integer(value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected a whole number from {low} to {high}, got {kind_of(value)}")
    if not low <= value <= high:
        shown_value = value if abs(value) < 10**15 else "a very large number"
        raise ValueError(f"must be from {low} to {high}, got {shown_value}")
    return value


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {kind_of(value)}")
    return value


def text(value: Any, what: str = "text") -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected {what}, got {kind_of(value)}")
    if "\x00" in value:
        raise ValueError(f"{what} may not contain NUL characters")
    return value


def choice(value: Any, choices: list[str]) -> str:
    listed = " | ".join(choices)
    if not isinstance(value, str):
        raise ValueError(f"expected one of {listed}, got {kind_of(value)}")
    if value not in choices:
        hint = suggestion(value, choices)
        raise ValueError(f"expected one of {listed}, got {value!r}{hint}")
    return value


def cidr(value: Any) -> ipaddress.IPv4Network:
    if not isinstance(value, str):
        raise ValueError(f"expected an IPv4 network like 10.213.7.0/24, got {kind_of(value)}")
    try:
        network = ipaddress.IPv4Network(value, strict=False)
    except ValueError:
        raise ValueError(f"expected an IPv4 network like 10.213.7.0/24, got {value!r}") from None
    if "/" not in value:
        raise ValueError(f"{value!r} has no prefix length; did you mean {network.network_address}/24?")
    if str(network) != value.strip():
        raise ValueError(f"{value!r} has host bits set; did you mean {network}?")
    if not 8 <= network.prefixlen <= 29:
        raise ValueError(f"prefix /{network.prefixlen} is out of range: use /8 to /29")
    return network


# Ranges a lab network may never take: a bridge there would shadow the host's own traffic, or the
# range is not unicast at all. Checked by overlap, so a /8 around 127.0.0.0 is refused as well.
RESERVED_RANGES: tuple[tuple[str, str], ...] = (
    ("0.0.0.0/8", "'this network' (0.0.0.0/8)"),
    ("127.0.0.0/8", "loopback (127.0.0.0/8)"),
    ("169.254.0.0/16", "link-local (169.254.0.0/16)"),
    ("224.0.0.0/4", "multicast (224.0.0.0/4)"),
    ("240.0.0.0/4", "reserved and broadcast (240.0.0.0/4, 255.255.255.255)"),
)


def subnet_problem(network: ipaddress.IPv4Network) -> str | None:
    """Why network cannot be a lab network, or None."""
    for reserved, what in RESERVED_RANGES:
        if network.overlaps(ipaddress.IPv4Network(reserved)):
            return f"{network} overlaps {what}; use a private range such as 10.213.7.0/24"
    return None


def is_public(network: ipaddress.IPv4Network) -> bool:
    """Outside RFC 1918, shared (100.64/10) and documentation space: someone's real addresses."""
    return not network.is_private and not network.subnet_of(ipaddress.IPv4Network("100.64.0.0/10"))


def address(value: Any) -> ipaddress.IPv4Address:
    if not isinstance(value, str):
        raise ValueError(f"expected an IPv4 address like 10.213.7.10, got {kind_of(value)}")
    try:
        return ipaddress.IPv4Address(value)
    except ValueError:
        raise ValueError(f"expected an IPv4 address like 10.213.7.10, got {value!r}") from None


def shown(value: str, limit: int = 60) -> str:
    """value quoted for a message: control characters escaped, long text cut."""
    return repr(value) if len(value) <= limit else repr(value[:limit]) + "..."


def suggestion(word: str, choices: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def default_lab_name(directory_name: str) -> str:
    """A DNS label made from the labfile's directory name ('My Lab_2' -> 'my-lab-2')."""
    cleaned = re.sub(r"[^a-z0-9-]+", "-", directory_name.lower()).strip("-")[:40].strip("-")
    return cleaned or "lab"
