"""A file step's `src` never brings the host's files along: links out of it are refused (named),
links inside it are copied as links, and `validate` says so with the step's position.

The host's secrets are stand-ins under tmp_path: `secret` for /etc/shadow, `home/` for /root.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from labctl import localtree
from labctl.cli import main
from labctl.errors import ProvisionError
from labctl.labfile.models import FileStep
from labctl.provision.archive import file_archive, tar_of

LABFILE = """\
name: files
machines:
  a:
    kind: ns
    provision:
      - file: {src: site, dest: /srv/www}
"""


@pytest.fixture
def host(tmp_path: Path) -> Path:
    """Stand-ins for what must never leave the host."""
    (tmp_path / "secret").write_text("root:$6$stand-in-hash:19000::::::\n")
    (tmp_path / "home" / ".ssh").mkdir(parents=True)
    (tmp_path / "home" / ".ssh" / "id_ed25519").write_text("PRIVATE KEY STAND-IN\n")
    return tmp_path


@pytest.fixture
def site(labdir: Path) -> Path:
    (labdir / "site" / "css").mkdir(parents=True)
    (labdir / "site" / "index.html").write_text("<h1>hi</h1>\n")
    (labdir / "site" / "css" / "a.css").write_text("body {}\n")
    return labdir / "site"


def members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        return {m.name: m for m in archive.getmembers()}


def contents(data: bytes) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        return b"".join(
            f.read() for m in archive.getmembers() if m.isfile() and (f := archive.extractfile(m))
        )


def test_links_that_stay_inside_src_are_copied_as_links(labdir: Path, site: Path) -> None:
    (site / "latest.css").symlink_to("css/a.css")
    (site / "css" / "home").symlink_to("../index.html")
    (site / "css" / "self").symlink_to(".")
    (site / "dangling").symlink_to("not-there-yet")
    (site / "run.sh").write_text("#!/bin/sh\n")
    (site / "run.sh").chmod(0o4755)  # the lab owner's setuid bit does not become root's
    data, is_dir = tar_of(labdir, site)
    found = members(data)
    assert is_dir
    assert found["./latest.css"].issym() and found["./latest.css"].linkname == "css/a.css"
    assert found["./css/home"].linkname == "../index.html"
    assert found["./css/self"].linkname == "."
    assert found["./dangling"].linkname == "not-there-yet"
    assert found["./run.sh"].mode == 0o755 and found["./run.sh"].uid == 0
    assert found["./css"].isdir() and found["./css"].mode == 0o755


def _leaving_links(site: Path, host: Path) -> dict[str, list[tuple[str, Path | str]]]:
    """Links (name in site, target) that must not be copied."""
    return {
        "absolute link to a file": [("shadow", host / "secret")],
        "absolute link to a directory": [("root", host / "home")],
        "absolute link to a path inside src": [("again", site / "index.html")],
        "relative link up and out": [("css/up", "../../../secret")],
        "relative link to src's parent": [("lab", "..")],
        # As written it stays in site (x/x/x/../secret is x/x/secret), but x -> . makes it climb.
        "link through another link": [("x", "."), ("y", "x/x/x/../secret")],
    }


@pytest.mark.parametrize("case", list(_leaving_links(Path("/s"), Path("/h"))))
def test_links_that_leave_src_are_refused_by_name(labdir: Path, site: Path, host: Path, case: str) -> None:
    links = _leaving_links(site, host)[case]
    for name, target in links:
        (site / name).symlink_to(target)
    with pytest.raises(ProvisionError, match=r"is a symlink to .*(outside|leaves) site") as caught:
        tar_of(labdir, site)
    assert f"{site / links[-1][0]} is a symlink" in caught.value.message
    assert caught.value.hint is not None


def test_special_files_are_refused(labdir: Path, site: Path) -> None:
    os.mkfifo(site / "pipe")
    with pytest.raises(ProvisionError, match=r"pipe is a FIFO: a file step copies only files"):
        localtree.check(labdir, site)


def test_a_hard_link_to_a_file_of_another_owner_is_refused(labdir: Path, site: Path, host: Path) -> None:
    # A student's lab directory holding a hard link to a root-only file (fs.protected_hardlinks=0).
    os.chown(labdir, 1000, 1000)
    os.link(host / "secret", site / "shadow")
    with pytest.raises(ProvisionError, match="shadow is a hard link to a file owned by uid 0"):
        tar_of(labdir, site)
    (site / "shadow").unlink()
    own = site / "mine"
    own.write_text("x")
    os.chown(own, 1000, 1000)
    os.link(own, site / "mine-too")
    assert "./mine-too" in members(tar_of(labdir, site)[0])


def test_src_outside_the_lab_is_refused_at_run_time(labdir: Path, site: Path, host: Path) -> None:
    with pytest.raises(ProvisionError, match="outside the lab's directory"):
        tar_of(labdir, host / "home")


def test_src_swapped_for_a_link_after_validation_is_refused(labdir: Path, site: Path, host: Path) -> None:
    step = FileStep(src=site.resolve(), dest="/srv/www")  # as validate left it
    site.rename(labdir / "old-site")
    site.symlink_to(host / "home")
    with pytest.raises(ProvisionError, match="outside the lab's directory"):
        file_archive(labdir, step)
    site.unlink()
    site.symlink_to("old-site")  # inside the lab, but not the path that was validated
    with pytest.raises(ProvisionError, match="now leads through a symlink"):
        file_archive(labdir, step)


@pytest.mark.parametrize("swap", ["symlink", "hard link"])
def test_a_file_replaced_between_walk_and_read_is_refused(
    labdir: Path, site: Path, host: Path, swap: str
) -> None:
    # The walk has checked index.html; then it becomes a link to the host's secret.
    entries = localtree.walk(labdir, site)
    entry = next(e for e in entries if e.path == "index.html")
    (site / "index.html").unlink()
    if swap == "symlink":
        (site / "index.html").symlink_to(host / "secret")
    else:
        os.link(host / "secret", site / "index.html")
    refused = pytest.raises(ProvisionError, match=r"index\.html.*(Too many levels|changed while)")
    with refused, localtree.open_file(entry, site) as (stream, _size):
        stream.read()
    entries.close()


def test_a_single_file_and_dest_ending_in_a_slash(labdir: Path, site: Path) -> None:
    data, directory = file_archive(labdir, FileStep(src=(site / "index.html").resolve(), dest="/etc/"))
    assert directory == "/etc" and list(members(data)) == ["index.html"]
    data, directory = file_archive(labdir, FileStep(src=(site / "index.html").resolve(), dest="/srv/x.html"))
    assert directory == "/srv" and list(members(data)) == ["x.html"]
    assert contents(data) == b"<h1>hi</h1>\n"


def test_validate_names_the_step_and_the_link(
    write_labfile: Callable[[str], Path], site: Path, host: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (site / "css" / "shadow").symlink_to(host / "secret")
    write_labfile(LABFILE)
    assert main(["validate"]) == 2
    err = capsys.readouterr().err
    assert f"labfile.yml:6:21: machines.a.provision[0].file.src: {site}/css/shadow is a symlink to " in err
    assert "stand-in-hash" not in err


def test_validate_refuses_a_src_that_is_a_link_out_of_the_lab(
    write_labfile: Callable[[str], Path], labdir: Path, host: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (labdir / "site").symlink_to(host / "home")
    write_labfile(LABFILE)
    assert main(["validate"]) == 2
    assert (
        "machines.a.provision[0].file.src: 'site' is outside the lab's directory" in capsys.readouterr().err
    )
