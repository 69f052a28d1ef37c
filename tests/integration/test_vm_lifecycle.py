"""The vm kind on the real libvirtd of this host (TCG here): one lab with a paravirtual and an
emulated VM, created in parallel, shared by every test of the module (a TCG boot costs ~30-90 s).

The last test destroys the lab and checks that nothing is left: no domain, no network, no bridge,
no data directory. The fixture destroys it again in any case.
"""

from __future__ import annotations

import concurrent.futures
import os
import pty
import re
import select
import shutil
import subprocess
import textwrap
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests_support import LABCTL, free_subnet

from labctl import addressing, keys, network, ssh
from labctl.box import Box
from labctl.drivers import Driver, LabContext, MachineState, driver_for
from labctl.errors import HostError, LabctlError, MachineTimeout
from labctl.labfile import load_lab
from labctl.labfile.models import Accel, Lab, Machine
from labctl.libvirt_util import lab_objects

pytestmark = pytest.mark.integration


@dataclass
class VmLab:
    lab: Lab
    context: LabContext
    driver: Driver

    def machine(self, name: str) -> Machine:
        return self.lab.machine(name)

    def sh(self, name: str, script: str) -> str:
        result = self.driver.run(self.machine(name), ["sh", "-c", script], timeout=120)
        assert result.returncode == 0, result.stderr
        return result.stdout


def write_lab(root: Path) -> Lab:
    root.mkdir(parents=True)
    (root / "labfile.yml").write_text(
        textwrap.dedent(f"""\
        name: vmt{uuid.uuid4().hex[:6]}
        networks:
          lan:
            cidr: {free_subnet()}
        machines:
          pv:
            kind: vm
            box: debian-12
            memory: 768M
            disk: 6G
            devices: paravirtual
          em:
            kind: vm
            box: debian-12
            memory: 768M
            devices: emulated
            accel: tcg
        """)
    )
    return load_lab(str(root / "labfile.yml"))


def tear_down(lab: Lab, driver: Driver) -> None:
    for machine in lab.machines:
        try:
            driver.destroy(machine)
        except LabctlError as exc:
            print(f"teardown: {exc}")
    network.remove_networks(lab)
    shutil.rmtree(driver.context.data_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def vmlab(debian_box: Box, tmp_path_factory: pytest.TempPathFactory) -> Iterator[VmLab]:
    lab = write_lab(tmp_path_factory.mktemp("vm") / "lab")
    context = LabContext(lab)
    driver = driver_for(lab.machines[0].kind, context)
    try:
        driver.check_host(lab.machines)
        context.state.ensure_dir()
        keys.ensure_keypair(context.key_path, f"labctl-{lab.id}")
        network.check_collisions(lab)
        network.ensure_networks(lab)
        # In parallel, as `labctl up` does: the driver must be thread-safe.
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            for future in [pool.submit(driver.create, m) for m in lab.machines]:
                future.result()
        yield VmLab(lab, context, driver)
    finally:
        tear_down(lab, driver)


def test_device_profiles_show_in_lspci(vmlab: VmLab) -> None:
    pv = vmlab.sh("pv", "lspci")
    em = vmlab.sh("em", "lspci")
    assert "Virtio" in pv and "network device" in pv and "block device" in pv and "RNG" in pv
    assert "virtio" not in em.lower()
    assert "82574L" in em or "82540EM" in em or "Gigabit Ethernet" in em  # e1000 family
    assert "SATA controller" in em
    assert vmlab.sh("pv", "findmnt -no SOURCE /").strip() == "/dev/vda"
    assert vmlab.sh("em", "findmnt -no SOURCE /").strip() == "/dev/sda"


def test_root_file_system_fills_the_disk(vmlab: VmLab) -> None:
    size = int(vmlab.sh("pv", "df -B1 --output=size / | tail -1").strip())
    assert size > 5 * 1024**3  # disk: 6G; the box's disk is 4 GiB


def test_machines_resolve_and_reach_each_other_by_name(vmlab: VmLab) -> None:
    em_ip = str(addressing.plan(vmlab.lab)[("em", "lan")].ip)
    assert vmlab.sh("pv", "getent hosts em").split()[0] == em_ip
    assert vmlab.sh("pv", "hostname").strip() == "pv"
    vmlab.sh("pv", "ping -c1 -W5 em")


def test_exec_and_run_report_exit_codes_and_output(vmlab: VmLab) -> None:
    pv = vmlab.machine("pv")
    result = vmlab.driver.run(pv, ["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert vmlab.driver.run(pv, ["cat"], input=b"fed through stdin").stdout == "fed through stdin"
    assert vmlab.driver.run(pv, ["printf", "%s", "a b; $(true)"]).stdout == "a b; $(true)"
    assert vmlab.driver.exec(pv, ["sh", "-c", "exit 7"]) == 7


def test_checks_probe_from_inside_a_vm(vmlab: VmLab) -> None:
    """The probes of `labctl check` run in a VM through its driver, as in a container."""
    from labctl.checks import Answer, run_check
    from labctl.labfile.models import Check, HttpProbe, RunProbe, TcpProbe

    pv = vmlab.machine("pv")

    def execute(argv: Sequence[str], timeout: float) -> Answer:
        result = vmlab.driver.run(pv, argv, timeout=timeout)
        return Answer(result.returncode, result.stdout, result.stderr)

    def detail(probe: RunProbe | HttpProbe | TcpProbe) -> str:
        return run_check(Check("c", "pv", probe, timeout=60), execute).detail

    em_ip = str(addressing.plan(vmlab.lab)[("em", "lan")].ip)
    assert detail(RunProbe(("hostname",), "hostname", stdout=re.compile("^pv$", re.M))) == ""
    assert detail(TcpProbe(em_ip, 22)) == ""
    assert detail(TcpProbe(em_ip, 81, open=False)) == ""
    assert detail(TcpProbe(em_ip, 81)).startswith(f"tcp {em_ip}:81 is closed")
    assert "Connection refused" in detail(HttpProbe(f"http://{em_ip}:81/"))


def test_state_records_accel_phases_and_console_log(vmlab: VmLab) -> None:
    records = vmlab.context.state.machines()
    for name in ("pv", "em"):
        record = records[name]
        assert record["kind"] == "vm"
        assert record["accel"] == "tcg"  # no vmx/svm on this host; em says accel: tcg
        assert set(record["phases"]) == {"define", "boot", "address", "ssh", "first_boot"}
        assert record["address"] == str(addressing.plan(vmlab.lab)[(name, "lan")].ip)
        log = Path(record["console_log"])
        assert log.is_file() and "Linux version" in log.read_text(errors="replace")
    assert vmlab.driver.state(vmlab.machine("pv")) is MachineState.RUNNING


def test_host_key_is_pinned_before_first_contact(vmlab: VmLab, tmp_path: Path) -> None:
    pv = vmlab.machine("pv")
    target = vmlab.driver.ssh_target(pv)
    assert target is not None and target.user == "root"
    host_key = keys.host_key(vmlab.context.state.dir, "pv").public_text().split()[1]
    assert host_key in vmlab.context.known_hosts.read_text()
    assert host_key in vmlab.sh("pv", "cat /etc/ssh/ssh_host_ed25519_key.pub")
    wrong = keys.ensure_keypair(tmp_path / "other", "other").public_text()
    fake_known = tmp_path / "known_hosts"
    keys.record_host_key(fake_known, target.host, 22, wrong)
    endpoint = ssh.Endpoint(target.host, 22, "root", target.key, fake_known)
    with pytest.raises(LabctlError) as raised:
        ssh.connect(endpoint, timeout=10)
    assert raised.value.hint and f"ssh-keygen -f {fake_known} -R {target.host}" in raised.value.hint


def test_lab_objects_are_found_by_label(vmlab: VmLab) -> None:
    objects = lab_objects(vmlab.lab.libvirt_uri, vmlab.lab.id)
    assert objects.domains == sorted(f"labctl-{vmlab.lab.id}-{m}" for m in ("em", "pv"))
    assert objects.networks == [f"labctl-{vmlab.lab.id}-lan"]
    argv = vmlab.driver.console_argv(vmlab.machine("pv"))  # type: ignore[attr-defined]
    assert argv == ["virsh", "-c", "qemu:///system", "console", f"labctl-{vmlab.lab.id}-pv"]


def test_console_reaches_the_serial_login_and_ctrl_bracket_leaves(vmlab: VmLab) -> None:
    """`labctl console pv` on a terminal: the guest's serial getty answers, Ctrl+] detaches."""
    master, slave = pty.openpty()
    argv = [*LABCTL, "-f", str(vmlab.lab.file), "console", "pv"]
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    seen = b""
    try:
        deadline = time.monotonic() + 60
        while b"login:" not in seen and time.monotonic() < deadline:
            os.write(master, b"\r")  # a getty redraws its prompt on Enter
            while select.select([master], [], [], 1.0)[0]:
                seen += os.read(master, 4096)
        os.write(master, b"\x1d")  # Ctrl+]: virsh's escape
        returncode = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    assert b"pv login:" in seen, seen[-500:]
    assert returncode == 0


def test_snapshot_restore_undoes_later_changes(vmlab: VmLab) -> None:
    em = vmlab.machine("em")
    vmlab.driver.snapshot_save(em, "clean")
    vmlab.sh("em", "echo later > /root/after-snapshot && sync")
    assert vmlab.driver.snapshot_list(em) == ["clean"]
    vmlab.driver.snapshot_restore(em, "clean")
    assert vmlab.sh("em", "ls /root") == ""
    with pytest.raises(LabctlError, match="no snapshot 'nope'"):
        vmlab.driver.snapshot_restore(em, "nope")
    vmlab.driver.snapshot_delete(em, "clean")
    assert vmlab.driver.snapshot_list(em) == []


def test_halt_then_start_again(vmlab: VmLab) -> None:
    pv = vmlab.machine("pv")
    vmlab.sh("pv", "echo kept > /root/kept && sync")
    vmlab.driver.stop(pv, timeout=120)
    assert vmlab.driver.state(pv) is MachineState.STOPPED
    vmlab.driver.start(pv)
    assert vmlab.driver.state(pv) is MachineState.RUNNING
    assert vmlab.sh("pv", "cat /root/kept") == "kept\n"


def test_accel_kvm_is_refused_before_anything_exists(vmlab: VmLab) -> None:
    from labctl import host

    kvm = Machine(**{**vmlab.machine("pv").__dict__, "name": "kvmonly", "accel": Accel.KVM})
    if host.kvm_usable()[0]:
        vmlab.driver.check_host([kvm])  # a KVM host accepts it
        return
    with pytest.raises(HostError, match="accel: kvm") as raised:
        vmlab.driver.check_host([kvm])
    assert "vmx/svm" in raised.value.message
    assert vmlab.driver.state(kvm) is MachineState.NOT_CREATED


def test_failed_create_removes_its_partial_resources(vmlab: VmLab, monkeypatch: pytest.MonkeyPatch) -> None:
    from labctl.drivers.vm import ready

    live_log = vmlab.context.data_dir / "vm" / "em" / "console.log"

    def never(*_args: object) -> None:
        # Fail once the kernel has printed, so that there is a log worth keeping.
        deadline = time.monotonic() + 120
        while "Linux version" not in (live_log.read_text(errors="replace") if live_log.exists() else ""):
            assert time.monotonic() < deadline, "the kernel printed nothing on the serial console"
            time.sleep(0.5)
        raise MachineTimeout("did not answer (simulated)")

    monkeypatch.setattr(ready, "wait_address", never)
    lab = vmlab.lab
    extra = vmlab.machine("em")
    vmlab.driver.destroy(extra)
    with pytest.raises(MachineTimeout) as raised:
        vmlab.driver.create(extra)
    assert "phase 'address'" in raised.value.message
    # The VM's files are gone, but the console log the hint names was kept in .labctl/logs/.
    kept = vmlab.context.state.dir.resolve() / "logs" / "em-console.log"
    assert raised.value.hint and str(kept) in raised.value.hint
    assert "Linux version" in kept.read_text(errors="replace")
    assert vmlab.driver.state(extra) is MachineState.NOT_CREATED
    assert not (vmlab.context.data_dir / "vm" / "em").exists()
    assert f"labctl-{lab.id}-em" not in lab_objects(lab.libvirt_uri, lab.id).domains


def test_destroy_leaves_nothing(vmlab: VmLab) -> None:
    lab = vmlab.lab
    tear_down(lab, vmlab.driver)
    for machine in lab.machines:
        vmlab.driver.destroy(machine)  # idempotent
        assert vmlab.driver.state(machine) is MachineState.NOT_CREATED
    virsh = subprocess.run(
        ["virsh", "-c", lab.libvirt_uri, "list", "--all", "--name"], capture_output=True, text=True
    )
    nets = subprocess.run(
        ["virsh", "-c", lab.libvirt_uri, "net-list", "--all", "--name"], capture_output=True, text=True
    )
    assert lab.id not in virsh.stdout and lab.id not in nets.stdout
    links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout
    assert network.bridge_for(lab, "lan") not in links
    assert not vmlab.context.data_dir.exists()
    assert lab_objects(lab.libvirt_uri, lab.id).domains == []
