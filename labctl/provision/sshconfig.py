"""An OpenSSH client config for a lab: one Host block per machine that runs sshd.

`ssh -F FILE web` and `scp -F FILE` then use the lab key, the lab's known_hosts and strict host
key checking, exactly like labctl. ssh_config has no escape character, only double quotes, so
values are checked rather than escaped: a path with a quote or a line break is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from labctl.errors import LabctlError
from labctl.labfile.models import Kind
from labctl.provision.inventory import host_key_alias

if TYPE_CHECKING:
    from labctl.drivers import Driver, LabContext


def quote(value: str) -> str:
    if any(c in value for c in '"\n\r\0'):
        raise LabctlError(
            f"cannot write {value!r} into an ssh config", "move the lab to a path without quotes"
        )
    return f'"{value}"' if any(c.isspace() for c in value) or "#" in value else value


def _one_line(value: str) -> str:
    if any(c in value for c in "\n\r\0"):
        raise LabctlError(f"cannot write {value!r} into an ssh config", "use paths without line breaks")
    return value


def render(context: LabContext, driver: Callable[[Kind], Driver]) -> str:
    lab = context.lab
    lines = [f"# labctl lab {lab.name} ({lab.file}); use: ssh -F THIS_FILE <machine>"]
    for machine in lab.machines:
        target = driver(machine.kind).ssh_target(machine)
        if target is None:
            lines += ["", f"# {machine.name} ({machine.kind.value}) runs no sshd: labctl ssh {machine.name}"]
            continue
        options = [
            ("HostName", target.host),
            ("Port", str(target.port)),
            ("User", target.user),
            ("IdentityFile", quote(str(Path(target.key).resolve()))),
            ("IdentitiesOnly", "yes"),
            ("UserKnownHostsFile", quote(str(context.known_hosts.resolve()))),
            ("StrictHostKeyChecking", "yes"),
            ("HostKeyAlias", host_key_alias(target.host, target.port)),
        ]
        if target.jump is not None:
            # The rest of the line is the command, run by a shell: shlex quoting is right here.
            options.append(("ProxyCommand", _one_line(target.jump.proxy_command())))
        lines += ["", f"Host {machine.name}", *(f"  {key} {value}" for key, value in options)]
    return "\n".join(lines) + "\n"
