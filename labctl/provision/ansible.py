"""The one place labctl runs Ansible: ansible_runner.run over an inventory built from the lab.

Progress comes from ansible-runner's event handler, line by line, so it streams live with the
machine's prefix like every other step. Host keys are checked (ANSIBLE_HOST_KEY_CHECKING) against
the lab's known_hosts, which the inventory names for every ssh host.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from labctl import ansible_vars
from labctl.errors import ProvisionError
from labctl.provision.inventory import plugin_dir

KEPT_ARTIFACTS = 5  # ansible-runner keeps this many runs' artifacts per lab


def environment() -> dict[str, str]:
    """Variables for Ansible: labctl's connection plugin added to any the user configured."""
    plugins = [str(plugin_dir())]
    if os.environ.get("ANSIBLE_CONNECTION_PLUGINS"):
        plugins.append(os.environ["ANSIBLE_CONNECTION_PLUGINS"])
    return {
        "ANSIBLE_CONNECTION_PLUGINS": os.pathsep.join(plugins),
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "PATH": search_path(),
    }


def search_path() -> str:
    """PATH with labctl's own bin directory first: in a venv, ansible-playbook lives there."""
    return os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", os.defpath)])


def run_playbook(
    private_dir: Path,
    inventory: Path,
    playbook: Path,
    limit: str,
    extra_vars: dict[str, Any],
    on_line: Callable[[str], None],
) -> int:
    """Run playbook against the hosts matching limit; every output line to on_line; its exit code.

    private_dir is ansible-runner's working directory (extra vars file, artifacts): one per
    machine, since machines provision in parallel."""
    refused = ansible_vars.check(extra_vars)
    if refused:  # validate refuses these too; this holds whatever built the variables
        raise ProvisionError(
            f"refusing to run {playbook.name}: {refused}",
            "extra_vars carry plain data only: no ansible_* or labctl_* variables, no {{ }} templates",
        )

    import ansible_runner

    def handler(event: dict[str, Any]) -> bool:
        for line in str(event.get("stdout") or "").splitlines():
            on_line(line)
        return True  # keep the event in the artifacts for later debugging

    private_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        result = ansible_runner.run(
            private_data_dir=str(private_dir),
            playbook=str(playbook),
            inventory=str(inventory),
            limit=limit,
            extravars=extra_vars,
            envvars=environment(),
            event_handler=handler,
            quiet=True,
            rotate_artifacts=KEPT_ARTIFACTS,
        )
    except Exception as exc:  # ansible-runner raises its own ConfigurationError and plain errors
        raise ProvisionError(
            f"cannot run ansible-playbook {playbook.name}: {exc}", "check that ansible-core is installed"
        ) from exc
    return int(result.rc if result.rc is not None else 1)
