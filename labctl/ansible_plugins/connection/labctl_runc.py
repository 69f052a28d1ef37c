"""Ansible connection plugin `labctl_runc`: tasks run in a labctl namespace container via runc.

Namespace containers run no sshd, so commands go through `runc --root ROOT exec ID`, and files are
streamed through `cat` in the container. Host variables (labctl inventory writes them):

    ansible_connection: labctl_runc
    labctl_runtime: runc                     # or crun
    labctl_runtime_root: /var/lib/labctl/labs/<lab id>/runc
    labctl_container: labctl-<lab id>-<machine>

Ansible loads this file by path (ANSIBLE_CONNECTION_PLUGINS) in its own process, which is why it
runs its commands itself instead of through labctl.run.
"""

from __future__ import annotations

import subprocess  # noqa: TID251 - runs inside Ansible, not labctl (see the docstring)
from typing import Any

from ansible.errors import AnsibleConnectionFailure, AnsibleError  # type: ignore[import-untyped]
from ansible.plugins.connection import ConnectionBase  # type: ignore[import-untyped]

DOCUMENTATION = """
name: labctl_runc
short_description: run tasks in a labctl namespace container through runc
description:
  - Runs commands with C(runc --root ROOT exec ID) and copies files through the container's C(cat).
  - The container needs /bin/sh, and python3 for most modules.
author: labctl
options:
  runtime:
    description: The OCI runtime binary (runc or crun).
    default: runc
    vars:
      - name: labctl_runtime
  runtime_root:
    description: The runtime's state directory for the lab (its --root option).
    required: true
    vars:
      - name: labctl_runtime_root
  container:
    description: The container's id.
    required: true
    vars:
      - name: labctl_container
extends_documentation_fragment:
  - connection_pipelining
"""

# Files are written with the container's sh, the path passed as "$1", never pasted into the text.
WRITE = 'cat > "$1"'


class Connection(ConnectionBase):  # type: ignore[misc]
    transport = "labctl_runc"
    has_pipelining = True
    default_user = "root"

    def _connect(self) -> Connection:
        self._connected = True
        return self

    def _exec_argv(self, *argv: str) -> list[str]:
        return [
            self.get_option("runtime"),
            "--root",
            self.get_option("runtime_root"),
            "exec",
            self.get_option("container"),
            *argv,
        ]

    def exec_command(
        self, cmd: str, in_data: bytes | None = None, sudoable: bool = True
    ) -> tuple[int, bytes, bytes]:
        super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        argv = self._exec_argv("/bin/sh", "-c", cmd)
        self._display.vvv(f"EXEC {argv}", host=self.get_option("container"))
        proc = self._popen(argv, stdin=subprocess.PIPE)
        stdout, stderr = proc.communicate(in_data)
        return proc.returncode, stdout, stderr

    def put_file(self, in_path: str, out_path: str) -> None:
        super().put_file(in_path, out_path)
        try:
            with open(in_path, "rb") as source:
                proc = self._popen(self._exec_argv("/bin/sh", "-c", WRITE, "sh", out_path), stdin=source)
                _, stderr = proc.communicate()
        except OSError as exc:
            raise AnsibleError(f"cannot read {in_path}: {exc}") from exc
        if proc.returncode != 0:
            raise AnsibleError(f"cannot write {out_path} in the container: {stderr.decode(errors='replace')}")

    def fetch_file(self, in_path: str, out_path: str) -> None:
        super().fetch_file(in_path, out_path)
        with open(out_path, "wb") as target:
            proc = self._popen(self._exec_argv("cat", "--", in_path), stdout=target)
            _, stderr = proc.communicate()
        if proc.returncode != 0:
            raise AnsibleError(f"cannot read {in_path} in the container: {stderr.decode(errors='replace')}")

    def _popen(self, argv: list[str], **streams: Any) -> subprocess.Popen[bytes]:
        streams.setdefault("stdout", subprocess.PIPE)
        try:
            return subprocess.Popen(argv, stderr=subprocess.PIPE, **streams)
        except FileNotFoundError as exc:
            raise AnsibleConnectionFailure(f"{argv[0]} not found on the controller") from exc

    def reset(self) -> None:
        pass

    def close(self) -> None:
        self._connected = False
