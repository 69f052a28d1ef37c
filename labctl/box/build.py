"""`labctl box build`: debootstrap, chroot apt install, configure, then make the artefacts.

Everything happens in a staging directory inside the store; the box appears in the store only
when its box.json is written and the directory is renamed into place. The package cache
(labctl_home()/cache/apt) is shared by debootstrap and the chroot's apt, so a rebuild downloads
only what changed on the mirror.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from labctl import console, paths, run
from labctl.box import artefacts
from labctl.box.chroot import POLICY_RC_D, chroot, mounted
from labctl.box.recipe import Recipe, load_recipe
from labctl.box.store import Box, BoxStore
from labctl.errors import BoxError, CommandError, HostError

TOOLS = ("debootstrap", "chroot", "mount", "mkfs.ext4", "qemu-img", "tar", "zstd")
APT_OPTIONS = (
    "-o", "Dpkg::Options::=--force-confold",
    "-o", "Dpkg::Use-Pty=0",
    "-o", "APT::Install-Recommends=false",
    "-o", "Acquire::Retries=3",
)  # fmt: skip


def build_box(store: BoxStore, name: str, *, mirror: str | None = None, force: bool = False) -> Box:
    recipe = load_recipe(name)
    _check_host()
    with store.lock(name):
        if store.has(name) and not force:
            raise BoxError(f"box {name} is already in the store", f"labctl box build {name} --force")
        if store.has(name):
            store.refuse_if_used(name, "rebuild")
        with console.step(f"building box {name}"), store.staging(name) as stage:
            _build_into(stage, recipe, mirror)
            return store.install(name, stage)


def _check_host() -> None:
    if os.geteuid() != 0:
        raise HostError("building a box needs root (debootstrap, chroot, mount)", "run it with sudo")
    for tool in TOOLS:
        if run.which(tool) is None and not Path("/usr/sbin", tool).exists():
            raise run.missing_program(tool)


def _build_into(stage: Path, recipe: Recipe, mirror: str | None) -> None:
    import time

    started = time.monotonic()
    root = stage / "rootfs"
    cache = paths.labctl_home() / "cache" / "apt"
    with _cache_lock(cache):
        _debootstrap(root, recipe, mirror, cache)
        _prepare(root, recipe)
        with mounted(root, cache):
            _install_packages(root, recipe)
            _configure(root, recipe)
            packages = _installed_packages(root)
    _clean(root, recipe)
    artefacts.make_all(stage, recipe, packages, build_seconds=time.monotonic() - started)


@contextlib.contextmanager
def _cache_lock(cache: Path) -> Iterator[None]:
    """Builds of different boxes share the cache; one apt writes to it at a time."""
    (cache / "partial").mkdir(parents=True, exist_ok=True)
    with open(cache.parent / "apt.lock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            console.info("waiting for another box build to finish with the package cache...")
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _debootstrap(root: Path, recipe: Recipe, mirror: str | None, cache: Path) -> None:
    argv: list[str | Path] = [
        "debootstrap", f"--variant={recipe.variant}", f"--components={','.join(recipe.components)}",
        f"--cache-dir={cache}", recipe.suite, root,
    ]  # fmt: skip
    if mirror:
        argv.append(mirror)
    with console.step(f"debootstrap {recipe.suite} ({recipe.variant})"):
        try:
            run.run(argv)
        except CommandError as exc:
            # The staging directory, and the log in it, is about to be removed: keep its tail.
            log = root / "debootstrap" / "debootstrap.log"
            tail = log.read_text(errors="replace").strip().splitlines()[-8:] if log.exists() else []
            detail = "\n  ".join([exc.message, *tail])
            raise BoxError(detail, "check the network, or give a reachable mirror with --mirror URL") from exc


def _prepare(root: Path, recipe: Recipe) -> None:
    """What must be in place before apt runs: no daemons, dpkg excludes, initramfs settings."""
    _write(root, "/usr/sbin/policy-rc.d", POLICY_RC_D, 0o755)
    rules = [f"path-exclude={p}" for p in recipe.dpkg_exclude]
    rules += [f"path-include={p}" for p in recipe.dpkg_include]
    if rules:
        _write(
            root,
            "/etc/dpkg/dpkg.cfg.d/90-labctl-exclude",
            "# labctl: keep the box small\n" + "\n".join(rules) + "\n",
        )
    modules = "# labctl: drivers for every disk and NIC model a lab may use\n" + "\n".join(
        recipe.initramfs_modules
    )
    _write(root, "/usr/share/initramfs-tools/modules.d/labctl", modules + "\n")
    for target, content in recipe.files:
        _write(root, target, content)


def _install_packages(root: Path, recipe: Recipe) -> None:
    with console.step(f"installing {len(recipe.packages)} packages and their dependencies"):
        chroot(root, ["apt-get", "update", "-q"], timeout=1800)
        chroot(root, ["apt-get", "install", "-y", "-q", *APT_OPTIONS, *recipe.packages], timeout=3600)


def _configure(root: Path, recipe: Recipe) -> None:
    with console.step("configuring"):
        _write(root, "/etc/fstab", f"LABEL={recipe.root_label} / ext4 defaults,errors=remount-ro 0 1\n")
        _write(root, "/etc/hostname", "localhost\n")
        _write(root, "/etc/hosts", "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n")
        for user in recipe.locked_users:
            chroot(root, ["usermod", "--password", "*", user])  # "*": no password can match
        if recipe.services_enable:
            chroot(root, ["systemctl", "enable", *recipe.services_enable])


def _installed_packages(root: Path) -> dict[str, str]:
    out = chroot(root, ["dpkg-query", "-W", "-f", "${Package}\t${Version}\n"]).stdout
    return dict(line.split("\t", 1) for line in out.splitlines() if "\t" in line)


def _clean(root: Path, recipe: Recipe) -> None:
    """Remove what must differ per machine or only served the build."""
    with console.step("cleaning the root file system"):
        for pattern in (
            "etc/ssh/ssh_host_*", "var/lib/dbus/machine-id", "var/lib/systemd/random-seed",
            "usr/sbin/policy-rc.d", "var/cache/apt/archives/*.deb", "var/cache/apt/*.bin",
            "var/lib/apt/lists/*", "var/log/**/*.log", "var/log/apt/*", "var/log/dpkg.log",
            "var/cache/debconf/*-old", "var/lib/dpkg/*-old", "debootstrap", "tmp/*", "var/tmp/*",
            "root/.bash_history", "dev/*", "run/*",
        ):  # fmt: skip
            for found in root.glob(pattern):
                paths.remove_tree(found, root)
        _purge_excluded(root, recipe)
        # Empty, not absent: systemd then generates a new machine ID at first boot.
        _write(root, "/etc/machine-id", "")
        _write(root, "/etc/resolv.conf", "")


def _purge_excluded(root: Path, recipe: Recipe) -> None:
    """Apply dpkg_exclude to files that debootstrap unpacked before the rules were in place."""
    import fnmatch

    for pattern in recipe.dpkg_exclude:
        for found in root.glob(pattern.lstrip("/")):
            files = [found] if not found.is_dir() or found.is_symlink() else _files_under(found)
            for path in files:
                inside = "/" + path.relative_to(root).as_posix()
                if not any(fnmatch.fnmatch(inside, keep) for keep in recipe.dpkg_include):
                    paths.remove_file(path, root)


def _files_under(directory: Path) -> list[Path]:
    return [Path(d, f) for d, _dirs, files in os.walk(directory) for f in files]


def _write(root: Path, target: str, content: str, mode: int = 0o644) -> None:
    # Never through a symlink in the tree: an absolute link would lead out onto the host.
    path = root / target.lstrip("/")
    existing = next(p for p in (path.parent, *path.parent.parents) if p.exists())
    if not existing.resolve().is_relative_to(root.resolve()):
        raise BoxError(f"{target} resolves outside the box's root file system")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink():
        path.unlink()
    path.write_text(content)
    path.chmod(mode)
