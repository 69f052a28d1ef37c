"""The one place where labctl runs external commands.

Commands are argv lists, never shell strings. A command that fails becomes a CommandError that
names the command, its exit code and the tail of its output; a missing program becomes a HostError
that names the Debian package to install.
"""

from __future__ import annotations

import os
import shutil
import subprocess  # noqa: TID251 - this module is the sanctioned boundary
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from labctl.errors import CommandError, HostError

# Which Debian package provides a program, for the "not found" hint.
PACKAGE_OF = {
    "virsh": "libvirt-clients",
    "qemu-img": "qemu-utils",
    "qemu-system-x86_64": "qemu-system-x86",
    "lxc-start": "lxc",
    "lxc-attach": "lxc",
    "lxc-info": "lxc",
    "lxc-stop": "lxc",
    "lxc-wait": "lxc",
    "lxc-freeze": "lxc",
    "lxc-unfreeze": "lxc",
    "lxc-destroy": "lxc",
    "lxc-create": "lxc",
    "lxc-snapshot": "lxc",
    "runc": "runc",
    "crun": "crun",
    "mount": "mount",
    "umount": "mount",
    "debootstrap": "debootstrap",
    "genisoimage": "genisoimage",
    "ip": "iproute2",
    "mkfs.ext4": "e2fsprogs",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "virt-xml-validate": "libvirt-clients",
    "chroot": "coreutils",
    "zstd": "zstd",
}


@dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    check: bool = True,
    capture: bool = True,
    input: str | bytes | None = None,
    timeout: float | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    hint: str | None = None,
) -> Result:
    """Run argv and wait for it. Output is captured as text unless capture is False."""
    args = [os.fspath(a) for a in argv]
    full_env = {**os.environ, **env} if env is not None else None
    try:
        proc = subprocess.run(
            args,
            input=input.encode() if isinstance(input, str) else input,
            stdout=subprocess.PIPE if capture else None,
            stderr=subprocess.PIPE if capture else None,
            stdin=subprocess.DEVNULL if input is None else None,
            timeout=timeout,
            env=full_env,
            cwd=cwd,
            check=False,
        )
    except FileNotFoundError as exc:
        raise missing_program(args[0]) from exc
    except subprocess.TimeoutExpired as exc:
        raise CommandError(args, -1, _text(exc.stdout), f"timed out after {timeout:g} s", hint) from exc
    result = Result(tuple(args), proc.returncode, _text(proc.stdout), _text(proc.stderr))
    if check and proc.returncode != 0:
        raise CommandError(args, proc.returncode, result.stdout, result.stderr, hint)
    return result


def stream(
    argv: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    stdin: int | None = None,
) -> int:
    """Run argv with the terminal's stdin/stdout/stderr and return its exit code."""
    args = [os.fspath(a) for a in argv]
    full_env = {**os.environ, **env} if env is not None else None
    try:
        return subprocess.run(args, env=full_env, cwd=cwd, stdin=stdin, check=False).returncode
    except FileNotFoundError as exc:
        raise missing_program(args[0]) from exc


def start(
    argv: Sequence[str | os.PathLike[str]],
    *,
    stdout: int | None = None,
    stderr: int | None = None,
    stdin: int | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    new_session: bool = False,
) -> subprocess.Popen[bytes]:
    """Start argv without waiting; the caller owns the process."""
    args = [os.fspath(a) for a in argv]
    full_env = {**os.environ, **env} if env is not None else None
    try:
        return subprocess.Popen(
            args,
            stdout=stdout,
            stderr=stderr,
            stdin=stdin,
            env=full_env,
            cwd=cwd,
            start_new_session=new_session,
        )
    except FileNotFoundError as exc:
        raise missing_program(args[0]) from exc


PIPE = subprocess.PIPE
DEVNULL = subprocess.DEVNULL
STDOUT = subprocess.STDOUT


def which(program: str) -> Path | None:
    found = shutil.which(program)
    return Path(found) if found else None


def missing_program(program: str) -> HostError:
    name = Path(program).name
    package = PACKAGE_OF.get(name)
    hint = f"install it with: apt-get install {package}" if package else "install it and retry"
    return HostError(f"{name} not found", hint + " (or run scripts/setup-host)")


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    if isinstance(data, str):
        return data
    return data.decode("utf-8", errors="replace")
