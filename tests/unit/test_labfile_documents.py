"""Documents that are not labfiles, broken YAML and hostile input: each gets a clean error."""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from labctl.cli import main


def problems(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["validate", *args])
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "labfile.yml:1:1: the labfile is empty"),
        (b"# only a comment\n", "labfile.yml:1:1: the labfile is empty"),
        (b"- a\n- b\n", "labfile.yml:1:1: expected a mapping of keys (name, machines, ...), got a list"),
        (b"just text\n", "expected a mapping of keys (name, machines, ...), got text 'just text'"),
        (b"machines: {a: [}\n", "labfile.yml:1:16: not valid YAML"),
        (b"machines:\n  a: 1\n b: 2\n", "labfile.yml:3:2: not valid YAML"),
        (b"name: caf\xe9\n", "labfile.yml:1:10: not UTF-8: byte 0xe9 cannot be decoded"),
        (
            b"machines:\n  a: {kind: ns}\n  a: {kind: ns}\n",
            "labfile.yml:3:3: machines.a: duplicate key (first given at line 2)",
        ),
        (
            b"machines:\n  a:\n    kind: ns\n    kind: lxc\n",
            "labfile.yml:4:5: machines.a.kind: duplicate key (first given at line 3)",
        ),
        (b"? [a, b]\n: 1\nmachines: {}\n", "keys must be plain names"),
    ],
)
def test_broken_documents(
    labdir: Path, capsys: pytest.CaptureFixture[str], content: bytes, expected: str
) -> None:
    (labdir / "labfile.yml").write_bytes(content)
    code, err = problems(capsys)
    assert code == 2
    assert expected in err
    assert "Traceback" not in err


def test_missing_file(labdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = problems(capsys)
    assert code == 2
    assert "labfile.yml:1:1: no such file; `labctl init` writes a starter labfile" in err


def test_directory_given_as_file(labdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (labdir / "sub").mkdir()
    code, err = problems(capsys, "-f", "sub")
    assert code == 2
    assert "sub:1:1: is a directory" in err


def test_unreadable_file(
    labdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = labdir / "labfile.yml"
    path.write_text("machines: {}\n")

    def deny(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    # Root reads any file, so unreadability is simulated at the open() the loader uses.
    monkeypatch.setattr("labctl.labfile.loader.open", deny, raising=False)
    code, err = problems(capsys)
    assert code == 2
    assert "cannot read the labfile: permission denied" in err


def test_merge_keys_and_anchors_work(
    write_labfile: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    write_labfile(
        """\
        x-base: &base {kind: lxc, box: debian-12, memory: 256M}
        machines:
          a: {<<: *base}
          b: {<<: *base, memory: 512M}
        """
    )
    code, err = problems(capsys)
    # x-base is not a labfile key: the anchors work, the unknown key is still reported.
    assert code == 2
    assert "labfile.yml:1:1: x-base: unknown key" in err
    assert "machines" not in err.replace("x-base", "")


def _assert_quick_and_small(capsys: pytest.CaptureFixture[str], expected: str) -> None:
    tracemalloc.start()
    started = time.monotonic()
    code, err = problems(capsys)
    elapsed = time.monotonic() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert code == 2
    assert expected in err
    # Generous bounds: these documents are built to take minutes and gigabytes when mishandled.
    assert elapsed < 2.0
    assert peak < 64 * 1024 * 1024


def test_billion_laughs(labdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    lines.append("machines: *a9")
    (labdir / "labfile.yml").write_text("\n".join(lines) + "\n")
    _assert_quick_and_small(capsys, "expands to more than")


def test_deep_nesting(labdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (labdir / "labfile.yml").write_text("machines: " + "[" * 100_000 + "]" * 100_000 + "\n")
    _assert_quick_and_small(capsys, "nested more than 50 levels deep")


def test_very_large_file(labdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (labdir / "labfile.yml").write_text("# " + "x" * (8 * 1024 * 1024) + "\nmachines: {}\n")
    _assert_quick_and_small(capsys, "larger than 1024 KiB")
