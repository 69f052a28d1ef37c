"""Which libvirt URIs labctl connects to: an allow-list, checked wherever a URI enters.

A libvirt URI is more than an address. Its query can name the program that carries the
connection (`command=`, `netcat=`), a socket to talk to (`socket=`), a whole driver root
(`qemu:///embed?root=`), TLS material, and so on: a labfile with such a URI would run a program
as root at `up` or `doctor`. labctl needs none of that, so it accepts only

- this host's QEMU driver, `qemu:///system` or `qemu:///session` (also over `qemu+unix://`),
  with no parameters;
- a remote host over SSH, `qemu+ssh://[user@]host[:port]/system` (or the libssh/libssh2
  transports), with only `keyfile=`, `known_hosts=` and `no_verify=` in the query;
- libvirt's in-memory test driver, `test:///default`, which touches nothing on the host.

Everything else is refused with the reason, by `validate` (with the labfile position), by the
state loader (a URI recorded in state.json) and by `connect` itself.
"""

from __future__ import annotations

import re
import urllib.parse

LOCAL_SCHEMES = ("qemu", "qemu+unix")
SSH_SCHEMES = ("qemu+ssh", "qemu+libssh", "qemu+libssh2")
LOCAL_PATHS = ("/system", "/session")
SSH_PARAMETERS = ("keyfile", "known_hosts", "no_verify")
TEST_URI = "test:///default"
EXAMPLE = "qemu:///system, or qemu+ssh://user@host/system for another host"

# A host name of letters, digits, '.', '-' and '_' that does not start with '-' (which ssh would
# read as an option), an IPv4 address, or an IPv6 address in brackets.
_HOST = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_.-]{0,252})|\[[0-9A-Fa-f:.]{2,45}\]")
_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}")
_CONTROL = re.compile(r"[\x00-\x20\x7f]")


def problem(uri: str) -> str | None:
    """Why labctl will not connect to uri, or None when it will."""
    if _CONTROL.search(uri):
        return "a libvirt URI may not contain spaces or control characters"
    try:
        parts = urllib.parse.urlsplit(uri)
        port = parts.port
    except ValueError as exc:
        return f"not a valid URI ({exc})"
    if uri == TEST_URI:
        return None
    if parts.fragment:
        return "a libvirt URI here has no '#' part"
    if parts.scheme in LOCAL_SCHEMES and not parts.netloc:
        return _local_problem(parts)
    if parts.scheme in SSH_SCHEMES:
        return _ssh_problem(parts, port)
    if parts.scheme in LOCAL_SCHEMES or parts.scheme.startswith("qemu+"):
        return f"the {parts.scheme!r} transport is not supported: labctl reaches other hosts over SSH only"
    return f"expected a QEMU URI such as {EXAMPLE}"


def _local_problem(parts: urllib.parse.SplitResult) -> str | None:
    if parts.path not in LOCAL_PATHS:
        return f"expected qemu:///system or qemu:///session, not the path {parts.path!r}"
    if parts.query:
        return "this host's libvirt takes no URI parameters here (socket= and the like are refused)"
    return None


def _ssh_problem(parts: urllib.parse.SplitResult, port: int | None) -> str | None:
    if not _HOST.fullmatch(_host_part(parts.netloc)):
        return "expected a host name or address after '//' (such as qemu+ssh://root@lab-host/system)"
    if parts.password is not None:
        return "a password in the URI is not supported: log in with a key (keyfile=PATH)"
    if parts.username is not None and not _USER.fullmatch(urllib.parse.unquote(parts.username)):
        return f"{parts.username!r} is not a user name (letters, digits, '_', '.', '-')"
    if port is not None and not 1 <= port <= 65535:
        return f"port {port} is out of range"
    if parts.path != "/system":
        return (
            f"a remote host is reached at /system (qemu+ssh://host/system), not {parts.path or 'no path'!r}"
        )
    return _parameters_problem(parts.query)


def _host_part(netloc: str) -> str:
    """The host of [user@]host[:port], as written (brackets kept around an IPv6 address)."""
    host_port = netloc.rpartition("@")[2]
    if host_port.startswith("["):
        return host_port.partition("]")[0] + "]"
    return host_port.partition(":")[0]


def _parameters_problem(query: str) -> str | None:
    try:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        return f"cannot read the URI parameters {query!r}"
    seen: set[str] = set()
    for name, value in pairs:
        if name not in SSH_PARAMETERS:
            allowed = ", ".join(f"{p}=" for p in SSH_PARAMETERS)
            return (
                f"the URI parameter {name!r} is not allowed (it could run or redirect a program); "
                f"labctl accepts {allowed}"
            )
        if name in seen:
            return f"the URI parameter {name!r} is given twice"
        seen.add(name)
        if _CONTROL.sub("", value.replace(" ", "")) != value.replace(" ", ""):
            return f"the URI parameter {name!r} holds control characters"
        if name == "no_verify" and value not in ("0", "1"):
            return f"no_verify= takes 0 or 1, got {value!r}"
        if name in ("keyfile", "known_hosts") and not value.startswith(("/", "~/")):
            return f"{name}= takes an absolute path (or one under ~/), got {value!r}"
    return None
