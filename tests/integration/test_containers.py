"""LXC and ns machines on this host through `labctl`, as a user drives them, in one shared lab.

One lab keeps the suite lean: an LXC system container and ns containers with the namespace
combinations labctl supports, all on one isolated network. The last test destroys it and checks
that the host keeps no trace of it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from tests_support import free_subnet

from labctl import cgroups, paths
from labctl.drivers import LabContext, MachineState
from labctl.drivers.lxc import LxcDriver
from labctl.drivers.ns import NsDriver
from labctl.drivers.overlay import mount_points
from labctl.idmap import host_idmap, ns_idmap
from labctl.labfile import load_lab
from labctl.labfile.models import Lab

pytestmark = pytest.mark.integration

NAMESPACES = {
    "full": {"pid", "net", "uts", "ipc", "mnt"},
    "userns": {"pid", "net", "uts", "ipc", "mnt", "user"},
    "netonly": {"net", "uts", "mnt"},
    "bare": {"mnt"},
}
PROC_NAMES = {
    "pid": "pid",
    "net": "net",
    "uts": "uts",
    "ipc": "ipc",
    "mnt": "mnt",
    "user": "user",
    "cgroup": "cgroup",
}
PINGERS = ["sys", "full", "userns"]  # machines with the box (ping) on the lab network


def labctl(
    labdir: Path,
    *args: str,
    input: str | None = None,
    timeout: float = 600,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it, with env on top of this process's environment."""
    return subprocess.run(
        [sys.executable, "-m", "labctl", *args],
        cwd=labdir,
        capture_output=True,
        text=True,
        input=input,
        timeout=timeout,
        env={**os.environ, "NO_COLOR": "1", **(env or {})},
        check=False,
    )


def host_traces(lab: Lab) -> dict[str, set[str]]:
    """Everything of this lab's containers the host can list: links, mounts, netns, runc, lxc, cgroups."""
    context = LabContext(lab)
    data_dir = context.data_dir
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    names = {line.split(":")[1].strip().split("@")[0] for line in links.splitlines()}
    ours = {nic.host for m in lab.machines if m.kind == "lxc" for nic in LxcDriver(context).nics(m)}
    ours |= {link.host for m in lab.machines if m.kind == "ns" for link in NsDriver(context).links(m)}
    # Only where the lab has them: `runc --root` creates its directory, a trace of its own.
    runc = ""
    if (data_dir / "runc").is_dir():
        runc = subprocess.run(
            ["runc", "--root", str(data_dir / "runc"), "list", "-q"], capture_output=True, text=True
        ).stdout
    lxc = ""
    if (data_dir / "lxc").is_dir():
        lxc = subprocess.run(["lxc-ls", "-P", str(data_dir / "lxc")], capture_output=True, text=True).stdout
    netns = {p.name for p in Path("/run/netns").glob("*")} if Path("/run/netns").is_dir() else set()
    return {
        "links": names & ours,
        "mounts": {str(p) for p in mount_points() if lab.id in str(p)},
        "netns": {n for n in netns if lab.id in n},
        "runc": set(runc.split()),
        "lxc": set(lxc.split()),
        "cgroups": {str(p) for p in cgroups.find_groups(lab.id)},
        "dirs": {str(p) for sub in ("ns", "lxc") for p in (data_dir / sub).glob("*")},
    }


def labfile(subnet: str) -> str:
    return textwrap.dedent(f"""\
        name: ctest
        networks:
          lan: {{cidr: {subnet}, mode: isolated}}
        machines:
          sys: {{kind: lxc, box: debian-12, cpus: 1, memory: 256M, networks: [lan]}}
          priv: {{kind: lxc, box: debian-12, memory: 128M, networks: [lan], privileged: true}}
          full: {{kind: ns, box: debian-12, cpus: 1, memory: 64M, namespaces: [pid, net, uts, ipc, mnt], networks: [lan]}}
          userns: {{kind: ns, box: debian-12, memory: 64M, namespaces: [pid, net, uts, ipc, mnt, user], networks: [lan]}}
          netonly: {{kind: ns, memory: 32M, namespaces: [net, uts, mnt], networks: [lan]}}
          bare: {{kind: ns, memory: 32M, namespaces: [mnt]}}
        """)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    labdir = tmp_path_factory.mktemp("containers")
    (labdir / "labfile.yml").write_text(labfile(free_subnet()))
    loaded = load_lab(str(labdir / "labfile.yml"))
    assert not any(host_traces(loaded).values())
    try:
        result = labctl(labdir, "up")
        assert result.returncode == 0, result.stdout + result.stderr
        yield loaded
    finally:
        labctl(labdir, "destroy")
        context = LabContext(loaded)
        for machine in loaded.machines:  # whatever the CLI left, so the host stays clean
            (LxcDriver if machine.kind == "lxc" else NsDriver)(context).destroy(machine)


def ns_driver(lab: Lab) -> NsDriver:
    return NsDriver(LabContext(lab))


@pytest.mark.parametrize("name", sorted(NAMESPACES))
def test_exactly_the_declared_namespaces_are_new(lab: Lab, name: str) -> None:
    pid = ns_driver(lab).init_pid(lab.machine(name))
    assert pid is not None
    new = {
        ns for ns in PROC_NAMES if os.readlink(f"/proc/{pid}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}")
    }
    assert new == NAMESPACES[name]


def test_limits_are_in_force(lab: Lab) -> None:
    ns = ns_driver(lab)
    full = lab.machine("full")
    group = Path("/sys/fs/cgroup/memory") / ns.container(full)
    assert int((group / "memory.limit_in_bytes").read_text()) == 64 * 1024**2
    assert ns.run(full, ["nproc"]).stdout.strip() == "1"
    lxc = LxcDriver(LabContext(lab))
    sys_ = lab.machine("sys")
    inside = lxc.run(sys_, ["cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes"]).stdout
    assert int(inside) == 256 * 1024**2
    assert lxc.run(sys_, ["nproc"]).stdout.strip() == "1"


@pytest.mark.parametrize("name", ["sys", "full", "bare"])
def test_exec_returns_exit_code_and_passes_stdin(lab: Lab, name: str) -> None:
    result = labctl(lab.root, "exec", name, "--", "sh", "-c", "cat; exit 7", input="through stdin\n")
    assert result.returncode == 7
    assert "through stdin" in result.stdout


def test_hostnames_and_user_mapping(lab: Lab) -> None:
    ns = ns_driver(lab)
    assert ns.run(lab.machine("netonly"), ["hostname"]).stdout.strip() == "netonly"
    assert ns.run(lab.machine("bare"), ["hostname"]).stdout.strip() == os.uname().nodename
    pid = ns.init_pid(lab.machine("userns"))
    ids = ns_idmap()  # root's own subordinate range, not a fixed one another user may hold
    assert ids.uid != host_idmap().uid  # nor the LXC machines' block
    assert Path(f"/proc/{pid}/uid_map").read_text().split() == ["0", str(ids.uid), "65536"]
    assert Path(f"/proc/{pid}/gid_map").read_text().split() == ["0", str(ids.gid), "65536"]


def test_lxc_root_is_an_id_mapped_host_uid_unless_privileged(lab: Lab) -> None:
    """Container root as the host sees it: root's subordinate uid, host root only when asked for."""
    lxc = LxcDriver(LabContext(lab))
    records = json.loads((lab.root / ".labctl" / "state.json").read_text())["machines"]
    for name, uid in (("sys", host_idmap().uid), ("priv", 0)):
        machine = lab.machine(name)
        pid = lxc.init_pid(machine)
        status = Path(f"/proc/{pid}/status").read_text()
        uids = next(line.split()[1:] for line in status.splitlines() if line.startswith("Uid:"))
        assert uids == [str(uid)] * 4, name
        assert records[name]["privileged"] is (uid == 0)
        booted = lxc.run(machine, ["systemctl", "is-system-running", "--wait"], timeout=120).stdout.strip()
        failed = lxc.run(machine, ["systemctl", "--failed", "--no-legend"]).stdout
        assert booted == "running", f"{name}: {booted}: {failed}"


@pytest.mark.parametrize("name", ["netonly", "bare"])
def test_a_box_less_machine_runs_host_programs_but_reads_no_host_secrets(lab: Lab, name: str) -> None:
    """Its root keeps CAP_DAC_OVERRIDE, so only what is not mounted at all stays private."""
    ns, machine = ns_driver(lab), lab.machine(name)

    assert ns.run(machine, ["cat", "/etc/passwd"]).stdout.startswith("root:")  # host config: there
    secrets = ["/etc/shadow", *map(str, Path("/etc/ssh").glob("ssh_host_*_key"))]
    for secret in secrets:
        result = ns.run(machine, ["cat", secret])
        assert result.returncode == 0 and result.stdout == "", secret  # masked by /dev/null
    data = ns.run(machine, ["find", "/root", "/home", "/var", "/srv", "/opt", "-mindepth", "1"])
    assert data.returncode == 0 and data.stdout == ""
    for host_path in (lab.root / ".labctl", paths.labctl_home()):  # this lab's keys, every lab's data
        assert ns.run(machine, ["test", "-e", str(host_path)]).returncode == 1, host_path
    assert ns.run(machine, ["touch", "/usr/labctl-probe"]).returncode != 0  # read-only
    assert not Path("/usr/labctl-probe").exists()


def as_nobody(program: str, *args: str) -> subprocess.CompletedProcess[str]:
    """program as another host user, the way a student sharing this host would try it.

    Through sh: setpriv itself looks the program up while still root."""
    setpriv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
    argv = [*setpriv, "sh", "-c", 'exec "$0" "$@"', program, *args]
    return subprocess.run(argv, capture_output=True, text=True, check=False)


@pytest.mark.parametrize("name", ["sys", "full"])
def test_a_setuid_file_planted_by_container_root_is_out_of_other_users_reach(lab: Lab, name: str) -> None:
    """Container root (host root, for these two) leaves a setuid copy of id(1) in its own tree;
    another host user must not reach it, through the upper dir or the host-side mount."""
    driver = LxcDriver(LabContext(lab)) if name == "sys" else ns_driver(lab)
    machine = lab.machine(name)
    plant = driver.run(machine, ["sh", "-c", "cp /usr/bin/id /root/suid-id && chmod 4755 /root/suid-id"])
    assert plant.returncode == 0, plant.stderr
    if name == "sys":
        planted = [LxcDriver(LabContext(lab)).directory(machine) / "upper/root/suid-id"]
    else:
        bundle = ns_driver(lab).bundle(machine)
        planted = [bundle / "upper/root/suid-id", bundle / "rootfs/root/suid-id"]
    # labs/ and labs/<id>/ let others pass (the qemu user must): the machine's own directory is
    # what keeps them out, whichever kind of machine came first on this host.
    for shared in (paths.labctl_home() / "labs", paths.labctl_home() / "labs" / lab.id):
        assert shared.stat().st_mode & 0o777 == 0o711, shared
    for path in planted:
        assert path.stat().st_mode & 0o4000, path  # it is there, setuid, owned by host root
        attempt = as_nobody(str(path), "-u")
        assert attempt.returncode != 0 and attempt.stdout.strip() != "0", (path, attempt)
        assert "Permission denied" in attempt.stderr, attempt.stderr
    driver.run(machine, ["rm", "-f", "/root/suid-id"])


def test_every_machine_reaches_every_other_by_name(lab: Lab) -> None:
    context = LabContext(lab)
    drivers = {"sys": LxcDriver(context), "full": NsDriver(context), "userns": NsDriver(context)}
    for source in PINGERS:
        for target in [*PINGERS, "netonly"]:
            result = drivers[source].run(lab.machine(source), ["ping", "-c", "1", "-W", "5", target])
            assert result.returncode == 0, f"{source} -> {target}: {result.stdout}{result.stderr}"
    resolved = ns_driver(lab).run(lab.machine("netonly"), ["getent", "hosts", "sys"]).stdout
    assert resolved.split()[0] == LxcDriver(context).address(lab.machine("sys"))


def test_ssh_into_lxc_with_the_recorded_host_key(lab: Lab) -> None:
    state = lab.root / ".labctl"
    address = LxcDriver(LabContext(lab)).address(lab.machine("sys"))
    result = labctl_ssh(state, str(address), "hostname")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "sys"


def labctl_ssh(state: Path, address: str, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "ssh",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            f"UserKnownHostsFile={state / 'known_hosts'}",
            "-i",
            str(state / "id_ed25519"),
            f"root@{address}",
            command,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_lxc_snapshot_restore_forgets_later_files(lab: Lab) -> None:
    assert labctl(lab.root, "snapshot", "save", "sys", "clean").returncode == 0
    assert labctl(lab.root, "exec", "sys", "--", "touch", "/root/later").returncode == 0
    restored = labctl(lab.root, "snapshot", "restore", "sys", "clean")
    assert restored.returncode == 0, restored.stderr
    assert labctl(lab.root, "exec", "sys", "--", "test", "-e", "/root/later").returncode == 1
    assert labctl(lab.root, "snapshot", "delete", "sys", "clean").returncode == 0


def test_ns_snapshot_is_refused_clearly(lab: Lab) -> None:
    result = labctl(lab.root, "snapshot", "save", "full", "x")
    assert result.returncode != 0
    assert "no snapshots" in result.stderr


def test_halt_then_up_again(lab: Lab) -> None:
    for name in ("sys", "netonly"):
        assert labctl(lab.root, "halt", name).returncode == 0
    context = LabContext(lab)
    assert ns_driver(lab).state(lab.machine("netonly")) is MachineState.STOPPED
    assert LxcDriver(context).state(lab.machine("sys")) is MachineState.STOPPED
    assert labctl(lab.root, "up").returncode == 0
    assert labctl(lab.root, "exec", "netonly", "--", "true").returncode == 0
    assert labctl(lab.root, "exec", "sys", "--", "true").returncode == 0


def test_destroy_leaves_nothing(lab: Lab) -> None:
    before = host_traces(lab)
    assert all(before[key] for key in ("links", "mounts", "netns", "runc", "lxc", "cgroups", "dirs")), before
    result = labctl(lab.root, "destroy")
    assert result.returncode == 0, result.stderr
    after = host_traces(lab)
    assert after == {key: set() for key in after}
