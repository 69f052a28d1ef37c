"""Reaching VMs on a remote libvirt host: through that host's sshd, as `ssh -J` would.

A VM on `qemu+ssh://user@host/system` sits on a lab bridge of that host, so its address is not
routable from here. labctl opens a `direct-tcpip` channel through the same SSH server libvirt
already talks to, and speaks SSH to the guest inside it; OpenSSH, scp and Ansible get an
equivalent ProxyCommand. The jump host is found as libvirt finds it: the URI's user, host, port
and `keyfile=` parameter, then the user's ~/.ssh/config. Its host key is checked against the
user's known_hosts (and the URI's `known_hosts=` file); only the URI's explicit `no_verify=1`
turns that off, with a warning.
"""

from __future__ import annotations

import functools
import logging
import shlex
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labctl import console
from labctl.errors import HostError

_lock = threading.Lock()
_clients: dict[JumpHost, Any] = {}  # paramiko SSHClient per jump host
_warned: set[JumpHost] = set()

# paramiko logs every refused channel (a guest still booting) at ERROR, and Python would print
# each one; labctl reports what matters itself.
logging.getLogger("paramiko").addHandler(logging.NullHandler())


@dataclass(frozen=True)
class JumpHost:
    """The SSH server in front of a remote libvirt host."""

    alias: str  # the host as the URI names it (may be a Host entry of ~/.ssh/config)
    hostname: str
    port: int
    user: str | None
    keyfile: Path | None
    known_hosts: Path | None
    verify: bool = True

    def __str__(self) -> str:
        user = f"{self.user}@" if self.user else ""
        return f"{user}{self.alias}" + (f":{self.port}" if self.port != 22 else "")

    @classmethod
    def from_uri(cls, uri: str, ssh_config: Path | None = None) -> JumpHost | None:
        """The jump host of a libvirt URI; None when the hypervisor is this host.

        A remote URI whose transport is not SSH (tcp, tls) is a HostError: labctl would have no
        way to reach the guests' lab network.
        """
        parts = urllib.parse.urlsplit(uri)
        if not parts.hostname:
            return None
        transport = parts.scheme.partition("+")[2]
        if transport not in ("ssh", "libssh", "libssh2"):
            raise HostError(
                f"libvirt URI {uri}: remote VMs need an SSH transport, not {transport or 'tls'}",
                "labctl reaches the guests through that host's sshd: use qemu+ssh://user@host/system",
            )
        params = dict(urllib.parse.parse_qsl(parts.query))
        config = _ssh_config(parts.hostname, ssh_config or Path.home() / ".ssh" / "config")
        keyfile = params.get("keyfile") or next(iter(config.get("identityfile", [])), None)
        return cls(
            alias=parts.hostname,
            hostname=config.get("hostname", parts.hostname),
            port=parts.port or int(config.get("port", 22)),
            user=urllib.parse.unquote(parts.username) if parts.username else config.get("user"),
            keyfile=Path(keyfile).expanduser() if keyfile else None,
            known_hosts=Path(params["known_hosts"]) if "known_hosts" in params else None,
            verify=params.get("no_verify", "0") != "1",
        )

    def proxy_command(self) -> str:
        """An OpenSSH ProxyCommand through this host (the command runs through a shell)."""
        argv = ["ssh", "-p", str(self.port)]
        if self.keyfile:
            argv += ["-i", str(self.keyfile)]
        if self.known_hosts:
            argv += ["-o", f"UserKnownHostsFile={self.known_hosts}"]
        if self.user:
            argv += ["-l", self.user]
        return f"{shlex.join([*argv, '-W'])} %h:%p {shlex.quote(self.alias)}"


@functools.cache
def for_uri(uri: str) -> JumpHost | None:
    """JumpHost.from_uri with the user's ssh config, read once per URI and process."""
    return JumpHost.from_uri(uri)


def _ssh_config(host: str, path: Path) -> dict[str, Any]:
    """What the user's ssh config says about host (hostname, port, user, identityfile)."""
    import paramiko

    if not path.is_file():
        return {}
    found = paramiko.SSHConfig.from_path(str(path)).lookup(host)
    return {key: found[key] for key in ("hostname", "port", "user", "identityfile") if key in found}


def open_channel(jump: JumpHost, host: str, port: int, timeout: float = 10.0) -> Any:
    """A channel to host:port as seen from the jump host (paramiko raises if it cannot open)."""
    transport = _transport(jump)
    return transport.open_channel("direct-tcpip", (host, port), ("127.0.0.1", 0), timeout=timeout)


def wait_for_port(jump: JumpHost, host: str, port: int, timeout: float) -> None:
    """Return once host:port accepts a connection from the jump host."""
    import paramiko

    from labctl.errors import MachineTimeout

    deadline = time.monotonic() + timeout
    while True:
        try:
            open_channel(jump, host, port, timeout=max(1.0, min(5.0, timeout))).close()
            return
        except (paramiko.SSHException, OSError, EOFError):
            if time.monotonic() >= deadline:
                raise MachineTimeout(
                    f"{host} did not accept connections on port {port} (seen from {jump}) within {timeout:.0f} s"
                ) from None
            time.sleep(0.5)


def login(jump: JumpHost) -> None:
    """Log in to the jump host now (HostError if labctl cannot), as `up` will have to."""
    _transport(jump)


def _transport(jump: JumpHost) -> Any:
    """One authenticated connection per jump host, shared by every thread, renewed when dead."""
    with _lock:
        client = _clients.get(jump)
        transport = client.get_transport() if client is not None else None
        if transport is not None and transport.is_active():
            return transport
        if client is not None:
            client.close()
        client = _clients[jump] = _connect(jump)
        return client.get_transport()


def _connect(jump: JumpHost) -> Any:
    import paramiko

    client = paramiko.SSHClient()
    client.load_system_host_keys()  # the user's ~/.ssh/known_hosts, as libvirt's ssh uses it
    if jump.known_hosts and jump.known_hosts.is_file():
        client.load_host_keys(str(jump.known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy() if jump.verify else paramiko.WarningPolicy())
    if not jump.verify and jump not in _warned:
        _warned.add(jump)
        console.warn(f"the host key of {jump} is not checked (no_verify=1 in its libvirt URI)")
    try:
        client.connect(
            jump.hostname,
            port=jump.port,
            username=jump.user,
            key_filename=str(jump.keyfile) if jump.keyfile else None,
            timeout=10.0,
            banner_timeout=30.0,
            auth_timeout=30.0,
        )
    except paramiko.SSHException as exc:
        client.close()
        raise HostError(
            f"cannot log in to the libvirt host {jump} over SSH: {exc}",
            f"check that `ssh {jump.alias}` works without a password prompt and that its host key is in ~/.ssh/known_hosts",
        ) from exc
    except OSError as exc:
        client.close()
        raise HostError(
            f"cannot reach the libvirt host {jump}: {exc.strerror or exc}",
            "check the host name and port in libvirt_uri",
        ) from exc
    transport = client.get_transport()
    if transport is not None:
        transport.set_keepalive(30)
    return client
