"""Validation of `provision:` steps: shell, file and ansible, in the order written."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from labctl import ansible_vars, localtree
from labctl.errors import ProvisionError
from labctl.labfile import values
from labctl.labfile.loader import Key, kind_of
from labctl.labfile.models import AnsibleStep, FileStep, ProvisionStep, ShellStep
from labctl.paths import resource_dir

if TYPE_CHECKING:
    from labctl.labfile.checker import Checker

STEP_KINDS = ["shell", "file", "ansible"]


class ProvisionChecker:
    def __init__(self, checker: Checker, root: Path) -> None:
        self.checker = checker
        self.root = root

    def steps(self, entry: tuple[Any, Key]) -> tuple[ProvisionStep, ...] | None:
        raw, path = entry
        if not isinstance(raw, list):
            self.checker.error(
                path,
                f"expected a list of steps (- shell: ..., - file: ..., - ansible: ...), got {kind_of(raw)}",
            )
            return None
        steps = [self._step((*path, i), item) for i, item in enumerate(raw)]
        return None if None in steps else tuple(s for s in steps if s is not None)

    def _step(self, path: Key, item: Any) -> ProvisionStep | None:
        if not isinstance(item, dict) or len(item) != 1:
            self.checker.error(path, "each step is a mapping with one key: shell, file or ansible")
            return None
        ((kind, body),) = item.items()
        if kind not in STEP_KINDS:
            self.checker.unknown_key((*path, kind), kind, STEP_KINDS)
            return None
        parse = {"shell": self._shell, "file": self._file, "ansible": self._ansible}[kind]
        return parse((*path, kind), body)

    def _fields(self, path: Key, body: dict[str, Any], allowed: list[str], required: list[str]) -> bool:
        ok = True
        for key in body:
            if key not in allowed:
                self.checker.unknown_key((*path, key), key, allowed)
                ok = False
        for key in required:
            if key not in body:
                self.checker.error(path, f"missing key {key!r}", key=True)
                ok = False
        return ok

    def _shell(self, path: Key, body: Any) -> ShellStep | None:
        if isinstance(body, str):
            if not body.strip():
                self._fail(path, "the shell step is empty")
                return None
            return ShellStep(inline=body)
        if not isinstance(body, dict):
            self._fail(path, f"expected shell text or {{script: PATH, args: [...]}}, got {kind_of(body)}")
            return None
        if not self._fields(path, body, ["inline", "script", "args"], []):
            return None
        if ("inline" in body) == ("script" in body):
            self._fail(path, "give exactly one of inline or script")
            return None
        args = body.get("args", [])
        if not isinstance(args, list) or not all(
            isinstance(a, (str, int, float)) and not isinstance(a, bool) for a in args
        ):
            self._fail((*path, "args"), f"expected a list of words, got {kind_of(args)}")
            return None
        if "inline" in body:
            inline = self.checker.parse((*path, "inline"), body["inline"], values.text)
            return ShellStep(inline=inline, args=tuple(str(a) for a in args)) if inline is not None else None
        script = self._local_file((*path, "script"), body["script"])
        return ShellStep(script=script, args=tuple(str(a) for a in args)) if script else None

    def _file(self, path: Key, body: Any) -> FileStep | None:
        if not isinstance(body, dict):
            self._fail(path, f"expected {{src: PATH, dest: /path/in/machine}}, got {kind_of(body)}")
            return None
        if not self._fields(path, body, ["src", "dest", "mode"], ["src", "dest"]):
            return None
        src = self._local_file((*path, "src"), body["src"], directory_ok=True)
        if src is not None and not self._copyable((*path, "src"), src):
            src = None
        dest = self.checker.parse((*path, "dest"), body["dest"], _guest_path)
        mode = self.checker.parse((*path, "mode"), body["mode"], _mode) if "mode" in body else None
        if src is None or dest is None or ("mode" in body and mode is None):
            return None
        return FileStep(src=src, dest=dest, mode=mode)

    def _copyable(self, path: Key, src: Path) -> bool:
        """No link out of src, no device or FIFO in it (checked again when the step runs)."""
        try:
            localtree.check(self.root, src)
        except ProvisionError as exc:
            self._fail(path, exc.message)
            return False
        return True

    def _ansible(self, path: Key, body: Any) -> AnsibleStep | None:
        if isinstance(body, str):
            body = {"playbook": body}
        if not isinstance(body, dict):
            self._fail(
                path,
                f"expected a playbook path or {{playbook: PATH, extra_vars: {{...}}}}, got {kind_of(body)}",
            )
            return None
        if not self._fields(path, body, ["playbook", "extra_vars"], ["playbook"]):
            return None
        playbook = self._playbook((*path, "playbook"), body["playbook"])
        extra = body.get("extra_vars", {})
        if not isinstance(extra, dict):
            self._fail((*path, "extra_vars"), f"expected a mapping of variables, got {kind_of(extra)}")
            return None
        if not self._extra_vars((*path, "extra_vars"), extra):
            return None
        return AnsibleStep(playbook=playbook, extra_vars=tuple(extra.items())) if playbook else None

    def _extra_vars(self, path: Key, extra: dict[Any, Any]) -> bool:
        """Plain data only: no connection or become variables, no Jinja (see labctl.ansible_vars)."""
        found = list(ansible_vars.problems(extra))
        for where, message, key in found:
            self.checker.error((*path, *where), message, key=key)
        return not found

    def _playbook(self, path: Key, value: Any) -> Path | None:
        """A path relative to the labfile, or the name of a playbook shipped with labctl."""
        if isinstance(value, str) and values.DNS_LABEL.fullmatch(value):
            shipped = resource_dir("playbooks") / f"{value}.yml"
            if shipped.is_file() and not (self.root / value).exists():
                return shipped
        return self._local_file(path, value)

    def _local_file(self, path: Key, value: Any, *, directory_ok: bool = False) -> Path | None:
        if not isinstance(value, str) or not value:
            self._fail(path, f"expected a path relative to the labfile, got {kind_of(value)}")
            return None
        resolved = (self.root / value).resolve()
        root = self.root.resolve()
        if resolved != root and root not in resolved.parents:
            self._fail(path, f"{value!r} is outside the lab's directory {root}; copy it into the lab")
            return None
        if not resolved.exists():
            self._fail(path, f"{value!r} does not exist (looked for {resolved})")
            return None
        if not directory_ok and not resolved.is_file():
            self._fail(path, f"{value!r} is not a file")
            return None
        return resolved

    def _fail(self, path: Key, message: str) -> None:
        self.checker.error(path, message)


def _guest_path(value: Any) -> str:
    text = values.text(value, "an absolute path inside the machine")
    if not text.startswith("/"):
        raise ValueError(f"expected an absolute path inside the machine, got {text!r}")
    return text


def _mode(value: Any) -> int:
    # YAML reads 0644 as the octal number 420 and '0644' as text; accept both.
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 0o7777:
        return value
    if isinstance(value, str):
        try:
            number = int(value, 8)
        except ValueError:
            number = -1
        if 0 <= number <= 0o7777:
            return number
    raise ValueError(f"expected a file mode like '0644', got {kind_of(value)}")
