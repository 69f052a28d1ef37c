"""Published figures to set beside ours, labelled as literature and never mixed with our data.

Source: W. Felter, A. Ferreira, R. Rajamony, J. Rubio, "An Updated Performance Comparison of
Virtual Machines and Linux Containers", IBM Research Report RC25482 (2014); short version at
ISPASS 2015, pp. 171-172. KVM and Docker against native Linux on a two-socket Xeon E5 server.

Only figures we could trace to text that quotes or reproduces the report are here; anything else
is left out rather than estimated. Where they were traced:

- KVM, Linpack/STREAM/block I/O: public notes on the report's Table I and its network and block
  I/O sections (Linpack 290.8 native, 241.3 untuned, 284.2 tuned GFLOPS; STREAM 1-3% below
  native; "KVM delivers only half as many IOPS"; sequential I/O about equal). The IOPS sentence
  also appears in independent summaries.
- Network (both systems): a Chinese translation of the report's network, Redis and conclusion
  sections (github.com/rhiswell/container-networking-notes, paper-notes/
  ispass15-vm-vs-container.md): all three configurations reach 9.3 Gbps; Docker's NAT doubles
  the round-trip latency; KVM adds 30 µs (+80%); Redis under Docker with the host's network
  stack is almost identical to native, with NAT 1.05x native latency at 4 connections and over
  1.11x at 100. Korean study notes (github.com/leeplay/study) repeat the doubling under NAT.
- Docker, Linpack and random I/O: reading notes quoting the report verbatim ("Performance is
  almost identical on both Linux and Docker"; "Docker introduces no overhead but KVM delivers
  only half as many IOPS"; "Containers that do not use NAT have identical performance to
  native Linux").
- Docker, memory: the report's conclusion (in the translation above) and InfoQ's summary of it:
  KVM and Docker "introduce a measurable but negligible overhead" for CPU and memory.

Not traced, so left out: Docker's numbers in Table I (Linpack GFLOPS, STREAM GB/s, RandomAccess
GUPS, PXZ MB/s), Docker's sequential fio figures, the netperf latencies in µs, and the MySQL
figures. Where the report gives words rather than a number, `relative` is None.

Relative performance is native = 1.00, higher is better (for latency: native latency / measured
latency).
"""

from __future__ import annotations

from dataclasses import dataclass

CITATION = (
    'W. Felter, A. Ferreira, R. Rajamony, J. Rubio, "An Updated Performance Comparison of Virtual '
    'Machines and Linux Containers", IBM Research Report RC25482 (2014); ISPASS 2015, pp. 171-172'
)
SHORT = "Felter et al. 2015"


@dataclass(frozen=True)
class Published:
    metric: str  # our metric it is set beside
    system: str  # as the paper names it
    benchmark: str  # what the paper measured
    relative: float | None  # native = 1.00; None when the paper gives words, not a number
    statement: str  # what the paper reports, in its terms


KVM: tuple[Published, ...] = (
    Published("cpu", "KVM (untuned)", "Linpack", 241.3 / 290.8, "241.3 vs 290.8 GFLOPS native (-17%)"),
    Published(
        "cpu",
        "KVM (tuned: vCPUs pinned, cache topology exposed)",
        "Linpack",
        284.2 / 290.8,
        "284.2 vs 290.8 GFLOPS native (-2%)",
    ),
    Published("memory", "KVM", "STREAM", None, "1% to 3% below native"),
    Published(
        "disk_randread", "KVM", "fio random I/O", 0.5, '"KVM delivers only half as many IOPS" as native'
    ),
    Published(
        "disk_randwrite", "KVM", "fio random I/O", 0.5, '"KVM delivers only half as many IOPS" as native'
    ),
    Published("disk_seqread", "KVM", "fio sequential I/O", None, "about equal to native"),
    Published("disk_seqwrite", "KVM", "fio sequential I/O", None, "about equal to native"),
    Published(
        "net_throughput", "KVM and Docker", "TCP bulk transfer", 1.0, "all reach 9.3 Gbps, like native"
    ),
    Published(
        "net_latency",
        "KVM",
        "TCP request-response round trip",
        1 / 1.8,
        "KVM adds about 30 µs per round trip (+80% latency)",
    ),
)

_DOCKER_IOPS = '"Docker introduces no overhead" (KVM: half as many IOPS)'

DOCKER: tuple[Published, ...] = (
    Published("cpu", "Docker", "Linpack", None, '"almost identical" to native Linux'),
    Published(
        "memory",
        "Docker",
        "CPU and memory benchmarks (conclusions)",
        None,
        '"a measurable but negligible overhead", like KVM',
    ),
    Published("disk_randread", "Docker", "fio random I/O", None, _DOCKER_IOPS),
    Published("disk_randwrite", "Docker", "fio random I/O", None, _DOCKER_IOPS),
    Published(
        "net_throughput",
        "Docker without NAT",
        "TCP bulk transfer, CPU cost",
        None,
        '"identical performance to native Linux"; NAT lengthens the transmit path',
    ),
    Published(
        "net_latency",
        "Docker with NAT",
        "TCP and UDP request-response round trip",
        0.5,
        "NAT doubles the round-trip latency",
    ),
    Published(
        "net_latency",
        "Docker with NAT",
        "Redis, 4 to 100 client connections",
        None,
        "latency 1.05× native at 4 connections, over 1.11× at 100",
    ),
    Published(
        "net_latency",
        "Docker with the host's network stack (--net=host)",
        "Redis",
        None,
        "throughput and latency almost identical to native",
    ),
)

PUBLISHED: tuple[Published, ...] = KVM + DOCKER


def published_for(metric: str) -> list[Published]:
    return [p for p in PUBLISHED if p.metric == metric]


# The same figures per group of our headline table, as text (ranges where the paper gives two);
# one row per system, each labelled as literature.
HEADLINES: tuple[dict[str, str], ...] = (
    {
        "system": f"KVM (literature: {SHORT})",
        "level": "hardware-assisted virtualization (KVM), native = 1",
        "cpu": "0.83-0.98× (Linpack, untuned-tuned)",
        "memory": "0.97-0.99× (STREAM)",
        "kernel": "–",
        "disk": "≈0.5× random IOPS, ≈1× sequential",
        "network": "≈1× throughput, 0.56× latency (+30 µs)",
    },
    {
        "system": f"Docker (literature: {SHORT})",
        "level": "OS-level virtualization (containers), native = 1",
        "cpu": "≈1× (Linpack, almost identical)",
        "memory": "≈1× (negligible overhead)",
        "kernel": "–",
        "disk": "≈1× random IOPS (no overhead)",
        "network": "≈1× throughput, 0.5× latency with NAT, ≈1× without",
    },
)
HEADLINE = HEADLINES[0]  # the KVM row, for callers that want one
