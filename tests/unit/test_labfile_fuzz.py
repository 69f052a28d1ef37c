"""A labfile fuzzer (issue 18 item 12): whatever the labfile holds, `labctl validate` exits 0, or 2
with every problem at a file:line:column, and never prints a control character of its own input.

Four generators, each bounded by its example count (about 20 s in all on the CI host): labfiles
built as YAML structure from labctl's own keys and hostile scalars; a valid labfile with hostile
fragments (anchors, aliases, merges, tags, huge numbers, control characters) spliced in at random
places, or put in place of a value; and raw bytes after a valid first line. Hypothesis shrinks any failure to a small labfile,
printed with the failure.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import string
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labctl.cli import main
from labctl.labfile.checks import CHECK_KEYS, HTTP_KEYS, RUN_KEYS, TCP_KEYS
from labctl.labfile.machines import ALL_MACHINE_KEYS
from labctl.labfile.provision import STEP_KINDS
from labctl.labfile.schema import LAB_KEYS, NETWORK_KEYS

POSITION = re.compile(r"(error: )?[^\n]*labfile\.yml:\d+:\d+: ")
RAW_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# LABCTL_FUZZ_EXAMPLES=5000 runs a longer search by hand; CI runs the default.
EXAMPLES = int(os.environ.get("LABCTL_FUZZ_EXAMPLES", "250"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

VALID = """\
name: fuzz
defaults: {box: debian-12, memory: 512M}
networks:
  lan: {cidr: 10.213.7.0/24, mode: isolated}
machines:
  web:
    kind: vm
    cpus: 2
    disk: 8G
    networks: [lan, {name: lan, ip: 10.213.7.20}]
    provision:
      - shell: echo hi
      - file: {src: ., dest: /srv}
  cache: {kind: lxc, memory: 256M, groups: [tier], networks: [lan]}
  probe: {kind: ns, namespaces: [pid, net, uts, ipc, mnt], command: [sleep, infinity]}
checks:
  - {name: a, step: 1-x, on: web, run: hostname, stdout: '^web$', retries: 2, timeout: 5s}
  - {name: b, on: host, http: {url: 'http://10.213.7.20/', status: 200, body: ok}}
  - {name: c, on: cache, tcp: {host: 10.213.7.20, port: 22, open: false}}
"""

# Plain scalars that yaml.safe_dump cannot produce (Python refuses to print an int of 5,000
# digits): the structured generator writes the key, and dump() puts the raw text in its place.
RAW = {
    "RAW_BIG_INT": "9" * 5000,
    "RAW_BIG_SIZE": "9" * 400 + "G",
    "RAW_BIG_HEX": "0x" + "f" * 4000,
    "RAW_SEXAGESIMAL": ":".join(["59"] * 200),
    "RAW_ALIAS": "*nowhere",
    "RAW_TAG": "!!python/object/apply:os.system [true]",
}
KEYS = sorted(
    {
        *LAB_KEYS,
        *NETWORK_KEYS,
        *ALL_MACHINE_KEYS,
        *STEP_KINDS,
        *CHECK_KEYS,
        *RUN_KEYS,
        *HTTP_KEYS,
        *TCP_KEYS,
        "name",
        "ip",
        "src",
        "dest",
        "mode",
        "playbook",
        "extra_vars",
        "inline",
        "script",
        "args",
    }
)
hostile_text = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=30)
names = st.one_of(
    st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True),
    hostile_text,
    st.sampled_from(["all", "ungrouped", "web\n", "a" * 64, "-x", "lan", "ok: lab x"]),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    hostile_text,
    st.sampled_from(["vm", "lxc", "ns", "debian-12", "isolated", "nat", "paravirtual", "emulated"]),
    st.builds(
        lambda n, u: f"{n}{u}", st.integers(0, 10**20), st.sampled_from(["", "M", "G", "MiB", "TB", "x"])
    ),
    st.builds(
        lambda a, b, p: f"{a}.{b}.0.0/{p}", st.integers(0, 300), st.integers(0, 255), st.integers(0, 40)
    ),
    st.sampled_from(["qemu:///system", "qemu+ssh://h/system?command=x", "test:///default", "::/"]),
    st.sampled_from(list(RAW)),  # replaced after dumping: what safe_dump cannot write
)
keys = st.one_of(st.sampled_from(KEYS), names)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=5)),
    max_leaves=25,
)
machine = st.dictionaries(st.sampled_from([*ALL_MACHINE_KEYS, "provision"]), values, max_size=7)
labfiles = st.fixed_dictionaries(
    {"machines": st.dictionaries(names, machine, max_size=5)},
    optional={
        "name": names,
        "networks": st.dictionaries(
            names, st.dictionaries(st.sampled_from(NETWORK_KEYS), scalars), max_size=3
        ),
        "defaults": machine,
        "libvirt_uri": scalars,
        "checks": st.lists(
            st.dictionaries(st.sampled_from(CHECK_KEYS + RUN_KEYS), values, max_size=8), max_size=4
        ),
        "extra": values,
    },
)
fragments = st.sampled_from(
    [
        "&a ",
        "*a",
        "<<: *a\n",
        "<<: [*a, *a]\n",
        "!!python/object:os.system ",
        "!!binary ",
        "!!timestamp x",
        "%YAML 1.1\n",
        "---\n",
        "...\n",
        "? ",
        "{",
        "}",
        "[",
        "]",
        ",",
        ": ",
        "- ",
        "\t",
        "\n",
        "  ",
        "'",
        '"',
        "\\",
        "\x00",
        "\x1b[2J",
        "\u202e",
        "\ufeff",
        "9" * 5000,
        "9" * 400 + "G",
        "1e400",
        "0x" + "f" * 100,
        "1:2:3:4:5:6:7:8:9",
        ".inf",
        ".nan",
        "~",
        "null",
        "yes",
        "&b [*b]",
        "&c {<<: *c}",
    ]
)
edits = st.lists(st.tuples(st.floats(0, 1), st.one_of(fragments, hostile_text)), min_size=1, max_size=6)
VALUE_STARTS = [m.end() for m in re.finditer(r": |- ", VALID)]


@pytest.fixture
def labfile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LABCTL_HOME", str(tmp_path / "home"))  # validate looks for boxes there
    (tmp_path / "lab").mkdir()
    return tmp_path / "lab" / "labfile.yml"


def check_validate(path: Path, content: bytes) -> None:
    path.write_bytes(content)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["validate", "-f", str(path)])
    printed = out.getvalue() + err.getvalue()
    assert code in (0, 2), printed
    assert not RAW_CONTROL.search(printed), printed
    if code == 0:
        assert out.getvalue().startswith("ok: lab "), printed
        return
    problems = [line for line in err.getvalue().splitlines() if not line.startswith("hint: ")]
    assert problems, printed
    assert all(POSITION.match(line) for line in problems), printed


def dump(data: dict[str, Any]) -> bytes:
    text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    for marker, raw in RAW.items():
        text = text.replace(marker, raw)
    return text.encode()


@FUZZ
@given(data=labfiles)
def test_structured_labfiles_exit_0_or_2_with_positions(labfile: Path, data: dict[str, Any]) -> None:
    check_validate(labfile, dump(data))


@FUZZ
@given(changes=edits)
def test_hostile_fragments_in_a_valid_labfile_exit_0_or_2(
    labfile: Path, changes: list[tuple[float, str]]
) -> None:
    text = VALID
    for where, fragment in changes:
        cut = int(where * len(text))
        text = text[:cut] + fragment + text[cut:]
    check_validate(labfile, text.encode())


@FUZZ
@given(changes=st.lists(st.tuples(st.sampled_from(VALUE_STARTS), fragments), min_size=1, max_size=3))
def test_hostile_values_in_a_valid_labfile_exit_0_or_2(labfile: Path, changes: list[tuple[int, str]]) -> None:
    """A fragment in place of a value (up to the end of its line), where YAML reads it as one."""
    text = VALID
    for start, fragment in sorted(changes, reverse=True):
        end = text.find("\n", start)
        text = text[:start] + fragment + text[end:]
    check_validate(labfile, text.encode())


@settings(FUZZ, max_examples=max(1, EXAMPLES * 3 // 5))
@given(
    tail=st.one_of(
        st.binary(max_size=200),
        st.text(alphabet=string.printable + "\x00\x85\xa0\u2028", max_size=200).map(str.encode),
    )
)
def test_bytes_after_a_valid_line_exit_0_or_2(labfile: Path, tail: bytes) -> None:
    check_validate(labfile, b"machines:\n  web: {kind: ns}\n" + tail)
