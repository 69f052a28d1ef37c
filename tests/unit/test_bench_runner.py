"""The bench loop with fake targets: interleaving, warm-up, incremental results, failures."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from labctl.bench.results import ResultsFile
from labctl.bench.runner import Bench
from labctl.bench.targets import Target, TargetInfo
from labctl.bench.workloads import SUITES, WORKLOADS
from labctl.drivers import ExecResult

CPU = next(w for w in WORKLOADS if w.name == "cpu")
DISK = next(w for w in WORKLOADS if w.name == "disk")
FIO = (Path(__file__).resolve().parent.parent / "data" / "bench" / "fio.json").read_text()


class FakeTarget(Target):
    def __init__(self, name: str, log: list[str], refuse_direct: bool = False, fail: bool = False) -> None:
        self.info = TargetInfo(name, "ns", "os-level")
        self.log = log
        self.refuse_direct = refuse_direct
        self.fail = fail

    def run(self, argv: Sequence[str], timeout: float) -> ExecResult:
        self.log.append(f"{self.name}:{argv[0] if argv[0] != 'taskset' else argv[3]}")
        if argv[0] == "mktemp":
            return ExecResult(0, f"/var/tmp/labctl-bench.{self.name}0001\n", "")
        if argv[0] in ("cat", "uname", "rm"):
            return ExecResult(0, "tsc\n", "")
        if self.fail:
            return ExecResult(1, "", "sysbench: not found")
        if argv[0] == "fio":
            if self.refuse_direct and "--direct=1" in argv:
                return ExecResult(1, "", "fio: Invalid argument")
            return ExecResult(0, FIO, "")
        return ExecResult(0, "    events per second:  1234.50\n", "")

    def server_address(self) -> str | None:
        return None


def bench(tmp_path: Path, targets: list[Target], repeats: int = 2) -> tuple[Bench, ResultsFile]:
    results = ResultsFile(tmp_path / "results.json", SUITES["quick"], repeats, {"kernel": "x"})
    return Bench(targets, SUITES["quick"], repeats, results, [CPU, DISK]), results


def test_rounds_interleave_targets_and_mark_the_warm_up(tmp_path: Path) -> None:
    log: list[str] = []
    runner, results = bench(tmp_path, [FakeTarget("a", log), FakeTarget("b", log)])
    runner.run()
    work = [entry for entry in log if entry.split(":")[1] in ("sysbench", "fio")]
    assert work == ["a:sysbench", "b:sysbench", "a:fio", "b:fio"] * 3  # warm-up + 2 rounds
    on_disk = json.loads(results.path.read_text())
    cpu = [s for s in on_disk["samples"] if s["metric"] == "cpu"]
    assert [(s["target"], s["repeat"], s["warmup"]) for s in cpu] == [
        ("a", 0, True),
        ("b", 0, True),
        ("a", 1, False),
        ("b", 1, False),
        ("a", 2, False),
        ("b", 2, False),
    ]
    assert {s["value"] for s in cpu} == {1234.5}
    assert [t["name"] for t in on_disk["targets"]] == ["a", "b"]
    assert on_disk["fingerprint"]["targets"]["a"]["clocksource"] == "tsc"


def test_refused_direct_io_falls_back_to_buffered_and_says_so(tmp_path: Path) -> None:
    log: list[str] = []
    runner, results = bench(tmp_path, [FakeTarget("a", log, refuse_direct=True)], repeats=1)
    runner.run()
    disk = [s for s in results.data["samples"] if s["workload"] == "disk"]
    assert disk and all(s["direct"] is False for s in disk)
    assert any("O_DIRECT refused" in n for n in results.data["notes"])


def test_failures_are_recorded_and_the_bench_goes_on(tmp_path: Path) -> None:
    log: list[str] = []
    runner, results = bench(tmp_path, [FakeTarget("bad", log, fail=True), FakeTarget("good", log)], repeats=1)
    runner.run()
    assert {e["target"] for e in results.data["errors"]} == {"bad"}
    assert {s["target"] for s in results.data["samples"]} == {"good"}


def test_network_workloads_are_skipped_without_a_path_to_the_host(tmp_path: Path) -> None:
    log: list[str] = []
    results = ResultsFile(tmp_path / "results.json", SUITES["quick"], 1, {})
    net = [w for w in WORKLOADS if w.network]
    Bench([FakeTarget("a", log)], SUITES["quick"], 1, results, net).run()
    assert not results.data["samples"]
    assert any("no network path" in n for n in results.data["notes"])


def test_an_interrupt_keeps_every_finished_sample(tmp_path: Path) -> None:
    log: list[str] = []

    class Interrupting(FakeTarget):
        def run(self, argv: Sequence[str], timeout: float) -> ExecResult:
            if argv[0] == "fio":
                raise KeyboardInterrupt
            return super().run(argv, timeout)

    runner, results = bench(tmp_path, [Interrupting("a", log)])
    with pytest.raises(KeyboardInterrupt):
        runner.run()
    results.finish("interrupted")
    on_disk = json.loads(results.path.read_text())
    assert on_disk["status"] == "interrupted"
    assert [s["metric"] for s in on_disk["samples"]] == ["cpu"]
    assert log[-1] == "a:rm"  # the scratch file is removed on the way out


def test_fio_works_in_a_private_directory_made_for_the_bench(tmp_path: Path) -> None:
    # A fixed file in /var/tmp lets any host user put a link there for fio, run as root, to
    # write through: each target gets a fresh mktemp -d directory, removed at the end.
    seen: list[list[str]] = []

    class Recording(FakeTarget):
        def run(self, argv: Sequence[str], timeout: float) -> ExecResult:
            seen.append(list(argv))
            return super().run(argv, timeout)

    runner, _results = bench(tmp_path, [Recording("a", [])], repeats=1)
    runner.run()
    made = [argv for argv in seen if argv[0] == "mktemp"]
    assert len(made) == 1 and made[0][:2] == ["mktemp", "-d"] and "/var/tmp" in made[0]
    assert seen.index(made[0]) < min(i for i, argv in enumerate(seen) if argv[0] == "fio")
    fio = [argv for argv in seen if argv[0] == "fio"]
    assert fio and all("--filename=/var/tmp/labctl-bench.a0001/fio" in argv for argv in fio)
    assert seen[-1] == ["rm", "-rf", "--", "/var/tmp/labctl-bench.a0001"]
    fixed = [a for argv in seen for a in argv if "/var/tmp/" in a or "/tmp/" in a]
    assert all("/var/tmp/labctl-bench.a0001" in a or a == "/var/tmp" for a in fixed)


def test_without_a_private_directory_the_disk_workload_is_skipped(tmp_path: Path) -> None:
    class NoMktemp(FakeTarget):
        def run(self, argv: Sequence[str], timeout: float) -> ExecResult:
            if argv[0] == "mktemp":
                return ExecResult(1, "", "mktemp: Read-only file system")
            return super().run(argv, timeout)

    log: list[str] = []
    runner, results = bench(tmp_path, [NoMktemp("a", log)], repeats=1)
    runner.run()
    assert not [entry for entry in log if entry.endswith(":fio")]
    assert {s["workload"] for s in results.data["samples"]} == {"cpu"}
    assert any(
        "disk skipped on a: mktemp failed: mktemp: Read-only file system" in n for n in results.data["notes"]
    )
