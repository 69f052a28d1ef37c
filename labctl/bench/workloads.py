"""The workloads: one command each, the same binaries on the host and in every machine.

Each workload is an argv (built from the suite's sizes) and a parser that turns the command's
output into one or more metrics. Runs are time-bounded (`--time`, `--timeout`, `--runtime`), never
a fixed amount of work, because a TCG guest is 10-50 times slower than the host: every target
runs for the same seconds and we compare rates, not durations.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from labctl.errors import LabctlError

# fio's file; the runner always passes one inside a private directory (see Bench._make_scratch).
SCRATCH = "labctl-bench.fio"


@dataclass(frozen=True)
class Suite:
    name: str
    repeats: int
    seconds: int  # per timed run
    fio_size: str
    pings: int


SUITES = {
    "quick": Suite("quick", repeats=3, seconds=2, fio_size="32M", pings=10),
    "standard": Suite("standard", repeats=10, seconds=5, fio_size="256M", pings=25),
}


@dataclass(frozen=True)
class Metric:
    name: str
    title: str
    unit: str
    higher_is_better: bool
    group: str  # cpu | memory | kernel | disk | network


@dataclass(frozen=True)
class Params:
    """What a workload needs to know about one run."""

    suite: Suite
    server: str | None = None  # the host-side address for network workloads
    port: int = 0
    direct: bool = True  # O_DIRECT for fio; off where the filesystem refuses it
    scratch: str = SCRATCH


@dataclass(frozen=True)
class Workload:
    name: str
    metrics: tuple[Metric, ...]
    command: Callable[[Params], list[str]]
    parse: Callable[[str], dict[str, float]]
    network: bool = False  # needs a host-side server reachable from the target

    def timeout(self, suite: Suite) -> float:
        # Generous: a TCG guest needs seconds just to start a program over SSH.
        return 120.0 + 10 * suite.seconds


class ParseError(LabctlError):
    pass


def _number(pattern: str, text: str, what: str) -> float:
    match = re.search(pattern, text)
    if not match:
        raise ParseError(f"cannot find {what} in the output", text.strip()[-300:] or "(no output)")
    return float(match.group(1))


# -- cpu, memory, kernel crossings ---------------------------------------------------------------


# CPU-bound runs are pinned to CPU 0 on every target: the containers' cpuset puts them there,
# and a host run on the other core would meet other load than the container's.
PIN = ["taskset", "--cpu-list", "0"]


def _cpu(p: Params) -> list[str]:
    return [
        *PIN,
        "sysbench",
        "cpu",
        "--cpu-max-prime=10000",
        "--threads=1",
        f"--time={p.suite.seconds}",
        "run",
    ]


def _memory(p: Params) -> list[str]:
    return [
        *PIN,
        "sysbench",
        "memory",
        "--memory-block-size=1M",
        "--memory-total-size=1000G",
        "--threads=1",
        f"--time={p.suite.seconds}",
        "run",
    ]


def _switch(p: Params) -> list[str]:
    # Two processes ping-pong over a pipe, pinned to CPU 0 everywhere so the host does not gain
    # from spreading them over two cores: each op is write+read syscalls and a context switch.
    return [
        "stress-ng",
        "--switch",
        "1",
        "--taskset",
        "0",
        "--timeout",
        f"{p.suite.seconds}s",
        "--metrics-brief",
    ]


def parse_sysbench_cpu(text: str) -> dict[str, float]:
    return {"cpu": _number(r"events per second:\s*([\d.]+)", text, "events per second")}


def parse_sysbench_memory(text: str) -> dict[str, float]:
    return {"memory": _number(r"\(([\d.]+) MiB/sec\)", text, "MiB/sec")}


def parse_switch(text: str) -> dict[str, float]:
    # "stress-ng: metrc: [pid] switch  369904  2.00  0.12  1.23  184917.28  274551.05"
    return {
        "switch": _number(r"\]\s+switch\s+\d+\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+([\d.]+)", text, "switch ops/s")
    }


# -- disk ------------------------------------------------------------------------------------------

FIO_JOBS = (
    ("disk_randread", "randread", "4k", "read"),
    ("disk_randwrite", "randwrite", "4k", "write"),
    ("disk_seqread", "read", "1M", "read"),
    ("disk_seqwrite", "write", "1M", "write"),
)


def _fio(p: Params) -> list[str]:
    argv = [
        "fio",
        "--output-format=json",
        f"--filename={p.scratch}",
        f"--size={p.suite.fio_size}",
        f"--direct={1 if p.direct else 0}",
        "--ioengine=psync",
        "--time_based",
        f"--runtime={p.suite.seconds}",
    ]
    for name, rw, bs, _ in FIO_JOBS:
        argv += [f"--name={name}", f"--rw={rw}", f"--bs={bs}", "--stonewall"]
    return argv


def parse_fio(text: str) -> dict[str, float]:
    try:
        data = json.loads(text[text.index("{") :])
    except ValueError as exc:
        raise ParseError("fio printed no JSON", text.strip()[-300:] or "(no output)") from exc
    jobs = {job["jobname"]: job for job in data.get("jobs", [])}
    values: dict[str, float] = {}
    for name, _, _, side in FIO_JOBS:
        if name not in jobs:
            raise ParseError(f"fio printed no result for {name}")
        stats = jobs[name][side]
        # Random jobs are judged by IOPS, sequential ones by bandwidth (KiB/s in fio's JSON).
        values[name] = float(stats["iops"]) if "rand" in name else float(stats["bw"]) / 1024
    return values


# -- network -------------------------------------------------------------------------------------


def _iperf(p: Params) -> list[str]:
    return [
        "iperf3",
        "--client",
        str(p.server),
        "--port",
        str(p.port),
        "--time",
        str(p.suite.seconds),
        "--json",
    ]


def _ping(p: Params) -> list[str]:
    return ["ping", "-n", "-q", "-c", str(p.suite.pings), "-i", "0.2", str(p.server)]


def parse_iperf(text: str) -> dict[str, float]:
    try:
        data = json.loads(text[text.index("{") :])
        bits = data["end"]["sum_received"]["bits_per_second"]
    except (ValueError, KeyError) as exc:
        raise ParseError("iperf3 printed no throughput", text.strip()[-300:] or "(no output)") from exc
    return {"net_throughput": float(bits) / 1e9}


def parse_ping(text: str) -> dict[str, float]:
    # "rtt min/avg/max/mdev = 0.031/0.045/0.061/0.009 ms" -> the average, in microseconds
    return {"net_latency": 1000 * _number(r"= [\d.]+/([\d.]+)/", text, "ping's rtt line")}


def _m(name: str, title: str, unit: str, group: str, higher: bool = True) -> Metric:
    return Metric(name, title, unit, higher, group)


WORKLOADS: tuple[Workload, ...] = (
    Workload(
        "cpu",
        (_m("cpu", "CPU: sysbench cpu, primes to 10000, 1 thread", "events/s", "cpu"),),
        _cpu,
        parse_sysbench_cpu,
    ),
    Workload(
        "memory",
        (_m("memory", "Memory bandwidth: sysbench memory, 1 MiB blocks, writes", "MiB/s", "memory"),),
        _memory,
        parse_sysbench_memory,
    ),
    Workload(
        "switch",
        (_m("switch", "Kernel crossings: stress-ng --switch (pipe ping-pong, CPU 0)", "ops/s", "kernel"),),
        _switch,
        parse_switch,
    ),
    Workload(
        "disk",
        (
            _m("disk_randread", "Disk: fio 4 KiB random read", "IOPS", "disk"),
            _m("disk_randwrite", "Disk: fio 4 KiB random write", "IOPS", "disk"),
            _m("disk_seqread", "Disk: fio 1 MiB sequential read", "MiB/s", "disk"),
            _m("disk_seqwrite", "Disk: fio 1 MiB sequential write", "MiB/s", "disk"),
        ),
        _fio,
        parse_fio,
    ),
    Workload(
        "net_throughput",
        (_m("net_throughput", "Network throughput: iperf3 TCP, target to host", "Gbit/s", "network"),),
        _iperf,
        parse_iperf,
        network=True,
    ),
    Workload(
        "net_latency",
        (_m("net_latency", "Network latency: ping round trip, target to host", "µs", "network", False),),
        _ping,
        parse_ping,
        network=True,
    ),
)

METRICS: dict[str, Metric] = {m.name: m for w in WORKLOADS for m in w.metrics}
