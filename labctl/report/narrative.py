"""Plain-language explanations: what makes each workload cost more at each level."""

from __future__ import annotations

from labctl.report.analysis import Analysis

BASE = {
    "cpu": (
        "Pure computation executes the same instructions everywhere. A container's process is an "
        "ordinary host process, so it should match the host. Under KVM the guest's instructions "
        "run natively on the CPU and only exits (timer interrupts, page-table faults) cost extra, "
        "so a KVM guest is usually within a few percent."
    ),
    "memory": (
        "Memory bandwidth is set by the memory system, not by the kernel. Containers touch memory "
        "exactly like the host. A KVM guest adds a second level of address translation (EPT/NPT), "
        "which costs on TLB misses but hardly on streaming writes."
    ),
    "kernel": (
        "A pipe ping-pong is two system calls and a context switch per operation: it measures how "
        "cheap it is to enter the kernel. Containers use the host kernel directly (namespaces add "
        "only lookups). In a KVM guest the guest kernel handles the calls without exits, but its "
        "scheduler, timers and inter-processor signals can cause exits to the hypervisor."
    ),
    "disk": (
        "Every I/O of a VM leaves the guest: the virtual disk is a device, so each request is an "
        "exit to QEMU, which then issues a host system call on the qcow2 overlay. virtio batches "
        "requests in a shared ring with few exits per request; an emulated SATA (AHCI) controller "
        "needs several trapped register accesses per request. Containers issue ordinary system "
        "calls to the host filesystem (through OverlayFS), so they pay almost nothing. Small random "
        "requests show the per-I/O cost, large sequential ones hide it. A VM can even beat the host on "
        "sequential reads: O_DIRECT in the guest bypasses only the guest's page cache, while QEMU "
        "reads the disk image through the host's page cache (libvirt's default cache mode)."
    ),
    "network": (
        "Network runs go from the target to the host: a container crosses a veth pair and the lab "
        "bridge inside the host kernel; a VM's packets are handed to QEMU (virtio-net ring or an "
        "emulated e1000 NIC with a trap per register access) and then a tap device on the bridge. "
        "The host's own baseline is its loopback stack, with no bridge at all. Latency shows the "
        "fixed cost per packet (exits, interrupts injected into the guest), throughput the cost "
        "per byte."
    ),
}

TCG = {
    "cpu": (
        "Here the VMs ran under TCG: QEMU translates every guest instruction block into host code "
        "before running it, which is why they reach only a small fraction of the host's rate. That "
        "is the cost of ISA emulation, not of KVM."
    ),
    "memory": (
        "Under TCG every guest load and store goes through QEMU's software TLB, so memory "
        "bandwidth falls far more than it would under KVM."
    ),
    "kernel": (
        "Under TCG each system call, privilege change and context switch in the guest is emulated "
        "in software, so kernel crossings are among the most expensive operations."
    ),
    "disk": (
        "Under TCG the guest's driver code itself is translated, on top of the device exits, so "
        "the emulated and paravirtual devices differ less than their exit counts would suggest."
    ),
    "network": (
        "Under TCG the guest's network stack is translated code, so per-packet cost dominates and "
        "latency rises by an order of magnitude or more."
    ),
}


def paragraph(group: str, analysis: Analysis) -> str:
    text = BASE.get(group, "")
    if analysis.tcg_targets and group in TCG:
        text += " " + TCG[group]
    return text


def tcg_warning(analysis: Analysis) -> str | None:
    names = analysis.tcg_targets
    if not names:
        return None
    return (
        f"The VMs {', '.join(names)} ran under TCG (QEMU's binary translator, no hardware "
        "virtualization). Their numbers show the cost of ISA emulation. They are NOT the cost of "
        "KVM: a KVM guest runs the same workloads at close to native speed. Compare them with the "
        "literature's KVM figures only to see how large the gap between emulation and "
        "hardware-assisted virtualization is. The idle memory of a TCG VM (RSS of its qemu "
        "process) also holds QEMU's cache of translated code, not only guest RAM."
    )
