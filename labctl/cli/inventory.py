"""labctl inventory: the lab as an Ansible inventory (YAML, INI or JSON) for `ansible -i FILE`.

Namespace containers are reached through labctl's connection plugin; `--env` prints the
ANSIBLE_CONNECTION_PLUGINS line that makes Ansible find it (eval it in the shell).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format", choices=["yaml", "ini"], default="yaml", help="inventory format (default yaml)"
    )
    parser.add_argument(
        "-o", "--write", metavar="FILE", help="write the inventory to FILE (0600) instead of stdout"
    )
    parser.add_argument(
        "--env",
        action="store_true",
        help="print `export ANSIBLE_CONNECTION_PLUGINS=...` for the ns machines' plugin, then exit",
    )


def run(args: argparse.Namespace) -> int:
    import json
    import shlex

    from labctl.cli.ssh_config import emit
    from labctl.labfile.models import Kind
    from labctl.provision import inventory

    if args.env:
        print(f"export ANSIBLE_CONNECTION_PLUGINS={shlex.quote(str(inventory.plugin_dir()))}")
        return 0
    from labctl.cli.common import open_lab

    runner = open_lab(args)
    built = inventory.build(runner.context, runner.driver)
    uses_plugin = any(m.kind is Kind.NS for m in runner.lab.machines)
    if args.json:
        text = json.dumps(built, indent=2) + "\n"
    elif args.format == "ini":
        text = _header(runner.lab.name, ";", uses_plugin) + inventory.to_ini(built)
    else:
        text = _header(runner.lab.name, "#", uses_plugin) + inventory.to_yaml(built)
    if args.write and args.format == "yaml" and Path(args.write).suffix not in ("", ".yml", ".yaml", ".json"):
        from labctl import console

        console.warn(f"Ansible reads a YAML inventory only from a file ending in .yml or .yaml: {args.write}")
    emit(text, args.write)
    return 0


def _header(lab: str, comment: str, uses_plugin: bool) -> str:
    text = f"{comment} labctl inventory of lab {lab}\n"
    if uses_plugin:
        text += (
            f"{comment} Namespace (ns) machines use labctl's connection plugin; before running\n"
            f'{comment} ansible or ansible-playbook: eval "$(labctl inventory --env)"\n'
        )
    return text
