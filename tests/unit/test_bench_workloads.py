"""Workload commands and the parsers, on output recorded from the real tools on this host."""

from __future__ import annotations

from pathlib import Path

import pytest

from labctl.bench import workloads
from labctl.bench.workloads import SUITES, Params, ParseError

DATA = Path(__file__).resolve().parent.parent / "data" / "bench"


def read(name: str) -> str:
    return (DATA / name).read_text()


def test_sysbench_cpu_and_memory() -> None:
    assert workloads.parse_sysbench_cpu(read("sysbench-cpu.txt"))["cpu"] > 100
    assert workloads.parse_sysbench_memory(read("sysbench-memory.txt"))["memory"] > 100


def test_stress_ng_switch_takes_the_real_time_rate() -> None:
    rate = workloads.parse_switch(read("stress-ng-switch.txt"))["switch"]
    assert rate == 187590.72


def test_fio_gives_iops_for_random_and_mib_per_second_for_sequential() -> None:
    values = workloads.parse_fio(read("fio.json"))
    assert set(values) == {"disk_randread", "disk_randwrite", "disk_seqread", "disk_seqwrite"}
    assert all(v > 0 for v in values.values())


def test_iperf3_in_gbit_and_ping_average_in_microseconds() -> None:
    assert workloads.parse_iperf(read("iperf3.json"))["net_throughput"] > 0.1
    assert workloads.parse_ping(read("ping.txt"))["net_latency"] == pytest.approx(75.0)


def test_parsers_name_what_they_missed() -> None:
    with pytest.raises(ParseError, match="events per second"):
        workloads.parse_sysbench_cpu("sysbench: command not found")
    with pytest.raises(ParseError, match="JSON"):
        workloads.parse_fio("fio: pid=1, err=22/file:filesetup.c")


def test_commands_are_time_bounded_and_use_the_suite_sizes() -> None:
    quick = Params(SUITES["quick"], server="10.1.2.1", port=5301)
    by_name = {w.name: w.command(quick) for w in workloads.WORKLOADS}
    assert "--time=2" in by_name["cpu"] and by_name["cpu"][:3] == ["taskset", "--cpu-list", "0"]
    assert (
        "--runtime=2" in by_name["disk"]
        and "--size=32M" in by_name["disk"]
        and "--direct=1" in by_name["disk"]
    )
    assert by_name["net_throughput"][:3] == ["iperf3", "--client", "10.1.2.1"]
    assert "10" in by_name["net_latency"] and by_name["net_latency"][-1] == "10.1.2.1"
    buffered = Params(SUITES["standard"], direct=False)
    fio = workloads.WORKLOADS[3].command(buffered)
    assert "--direct=0" in fio and "--size=256M" in fio


def test_every_metric_belongs_to_a_known_group() -> None:
    assert {m.group for m in workloads.METRICS.values()} == {"cpu", "memory", "kernel", "disk", "network"}
    assert not workloads.METRICS["net_latency"].higher_is_better
