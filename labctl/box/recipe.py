"""Box recipes: boxes/NAME.yml loaded into a frozen Recipe, with the hash that identifies it."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labctl.errors import BoxError, UsageError
from labctl.paths import resource_dir

FORMAT = 1
NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_SIZE_RE = re.compile(r"^([1-9][0-9]*)([MG])$")

_REQUIRED = {"format", "distribution", "suite", "packages", "root_label", "disk_size", "kernel_cmdline"}
_OPTIONAL = {
    "description",
    "variant",
    "components",
    "dpkg_exclude",
    "dpkg_include",
    "users",
    "first_boot",
    "initramfs_modules",
    "services_enable",
    "files",
}


def validate_name(name: str) -> str:
    """Box names are DNS labels: they become directory names, LXC names and host names."""
    if not NAME_RE.fullmatch(name):
        raise UsageError(
            f"invalid box name {name!r}",
            "use lowercase letters, digits and hyphens (at most 63, no hyphen at either end)",
        )
    return name


@dataclass(frozen=True)
class Recipe:
    name: str
    path: Path
    sha256: str
    description: str
    distribution: str
    suite: str
    variant: str
    components: tuple[str, ...]
    packages: tuple[str, ...]
    dpkg_exclude: tuple[str, ...]
    dpkg_include: tuple[str, ...]
    locked_users: tuple[str, ...]
    first_boot: str
    root_label: str
    disk_size_mib: int
    kernel_cmdline: str
    initramfs_modules: tuple[str, ...]
    services_enable: tuple[str, ...]
    files: tuple[tuple[str, str], ...]


def recipe_names() -> list[str]:
    return sorted(p.stem for p in resource_dir("boxes").glob("*.yml") if NAME_RE.fullmatch(p.stem))


def load_recipe(name: str) -> Recipe:
    validate_name(name)
    path = resource_dir("boxes") / f"{name}.yml"
    if not path.is_file():
        known = ", ".join(recipe_names()) or "none"
        raise BoxError(f"no recipe for box {name}", f"recipes in {path.parent}: {known}")
    return parse_recipe(name, path, path.read_bytes())


def parse_recipe(name: str, path: Path, data: bytes) -> Recipe:
    import yaml

    try:
        raw = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        raise BoxError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise BoxError(f"{path}: a recipe is a mapping of keys to values")
    _check_keys(path, raw)
    return Recipe(
        name=name,
        path=path,
        sha256=hashlib.sha256(data).hexdigest(),
        description=_str(path, raw, "description", ""),
        distribution=_str(path, raw, "distribution"),
        suite=_str(path, raw, "suite"),
        variant=_str(path, raw, "variant", "minbase"),
        components=_strs(path, raw, "components", ["main"]),
        packages=_strs(path, raw, "packages"),
        dpkg_exclude=_strs(path, raw, "dpkg_exclude", []),
        dpkg_include=_strs(path, raw, "dpkg_include", []),
        locked_users=_users(path, raw.get("users", [])),
        first_boot=_first_boot(path, raw),
        root_label=_str(path, raw, "root_label"),
        disk_size_mib=_size_mib(path, _str(path, raw, "disk_size")),
        kernel_cmdline=_str(path, raw, "kernel_cmdline"),
        initramfs_modules=_strs(path, raw, "initramfs_modules", []),
        services_enable=_strs(path, raw, "services_enable", []),
        files=_files(path, raw.get("files", {})),
    )


def _check_keys(path: Path, raw: dict[str, Any]) -> None:
    unknown = sorted(set(raw) - _REQUIRED - _OPTIONAL)
    missing = sorted(_REQUIRED - set(raw))
    if unknown or missing:
        parts = [f"unknown keys: {', '.join(unknown)}"] if unknown else []
        parts += [f"missing keys: {', '.join(missing)}"] if missing else []
        raise BoxError(f"{path}: {'; '.join(parts)}", "see docs/boxes.md for the recipe keys")
    if raw["format"] != FORMAT:
        raise BoxError(f"{path}: format {raw['format']!r} is not supported (this labctl reads {FORMAT})")


def _str(path: Path, raw: dict[str, Any], key: str, default: str | None = None) -> str:
    value = raw.get(key, default)
    if not isinstance(value, str) or (not value and default is None):
        raise BoxError(f"{path}: {key} must be a non-empty string")
    return value


def _strs(path: Path, raw: dict[str, Any], key: str, default: list[str] | None = None) -> tuple[str, ...]:
    value = raw.get(key, default)
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise BoxError(f"{path}: {key} must be a list of strings")
    return tuple(value)


def _users(path: Path, value: Any) -> tuple[str, ...]:
    # Only locked accounts are supported: a box never carries a password or a key.
    if not isinstance(value, list):
        raise BoxError(f"{path}: users must be a list")
    names = []
    for user in value:
        if not isinstance(user, dict) or set(user) != {"name", "password"} or user["password"] != "locked":  # noqa: S105 - the only accepted value
            raise BoxError(f"{path}: each user is {{name: NAME, password: locked}}")
        names.append(str(user["name"]))
    return tuple(names)


def _first_boot(path: Path, raw: dict[str, Any]) -> str:
    value = raw.get("first_boot", "cloud-init")
    if value != "cloud-init":
        raise BoxError(f"{path}: first_boot {value!r} is not supported", "use first_boot: cloud-init")
    return str(value)


def _size_mib(path: Path, text: str) -> int:
    match = _SIZE_RE.fullmatch(text)
    if not match:
        raise BoxError(f"{path}: disk_size {text!r} is not a size", "write it like 4G or 2048M")
    return int(match.group(1)) * (1024 if match.group(2) == "G" else 1)


def _files(path: Path, value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict):
        raise BoxError(f"{path}: files must map absolute paths to their content")
    files = []
    for target, content in value.items():
        if not isinstance(target, str) or not target.startswith("/") or ".." in target.split("/"):
            raise BoxError(f"{path}: files: {target!r} must be an absolute path without '..'")
        if not isinstance(content, str):
            raise BoxError(f"{path}: files: {target}: content must be a string")
        files.append((target, content))
    return tuple(files)
