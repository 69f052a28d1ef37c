"""Published figures to set beside ours, labelled as literature and never mixed with our data.

Source: W. Felter, A. Ferreira, R. Rajamony, J. Rubio, "An Updated Performance Comparison of
Virtual Machines and Linux Containers", IBM Research Report RC25482 (2014); short version at
ISPASS 2015, pp. 171-172. KVM and Docker against native Linux on a two-socket Xeon E5 server.

Only figures we could trace are here (from notes on the report's Table I and its network and
block I/O sections; the IOPS statement also appears in independent summaries). Anything we could
not trace is left out rather than estimated. Relative performance is native = 1.00, higher is
better (for latency: native latency / measured latency).
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


PUBLISHED: tuple[Published, ...] = (
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


def published_for(metric: str) -> list[Published]:
    return [p for p in PUBLISHED if p.metric == metric]


# The same figures per group of our headline table, as text (ranges where the paper gives two).
HEADLINE = {
    "system": "KVM (literature: Felter et al. 2015)",
    "level": "hardware-assisted virtualization (KVM), native = 1",
    "cpu": "0.83-0.98× (Linpack, untuned-tuned)",
    "memory": "0.97-0.99× (STREAM)",
    "kernel": "–",
    "disk": "≈0.5× random IOPS, ≈1× sequential",
    "network": "≈1× throughput, 0.56× latency (+30 µs)",
}
