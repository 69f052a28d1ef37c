"""Provisioning steps against an in-memory machine: order, live prefixed output, failure reports,
file uploads as tar streams, the ansible step's call, and `up`'s choice of what to provision."""

from __future__ import annotations

import io
import subprocess
import tarfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

from labctl.cli import main
from labctl.drivers import DRIVERS, Driver, ExecResult, LabContext, MachineState
from labctl.errors import ProvisionError
from labctl.labfile import load_lab
from labctl.labfile.models import Kind, Machine
from labctl.provision import Provisioner
from labctl.provision.archive import tar_of
from labctl.provision.transport import EXTRACT_INTO, WRITE_FILE, LineSplitter

RUNNING: set[str] = set()


class MemoryDriver(Driver):
    """A machine whose files live in a dict; uploaded scripts run in the host's sh, in a temp dir."""

    kind = Kind.NS
    files: ClassVar[dict[str, bytes]] = {}
    calls: ClassVar[list[tuple[str, list[str]]]] = []
    made = 0  # directories mktemp made

    def create(self, machine: Machine) -> None:
        RUNNING.add(machine.name)

    def start(self, machine: Machine) -> None:
        RUNNING.add(machine.name)

    def resume(self, machine: Machine) -> None:
        RUNNING.add(machine.name)

    def stop(self, machine: Machine, timeout: float = 60.0) -> None:
        RUNNING.discard(machine.name)

    def destroy(self, machine: Machine) -> None:
        RUNNING.discard(machine.name)

    def state(self, machine: Machine) -> MachineState:
        return MachineState.RUNNING if machine.name in RUNNING else MachineState.NOT_CREATED

    def address(self, machine: Machine) -> str | None:
        return None

    def exec(self, machine: Machine, argv: Sequence[str], *, tty: bool = False) -> int:
        return 0

    def run(
        self,
        machine: Machine,
        argv: Sequence[str],
        *,
        input: bytes | None = None,
        timeout: float | None = None,
    ) -> ExecResult:
        argv = list(argv)
        self.calls.append((machine.name, argv))
        if argv[:3] == ["sh", "-c", WRITE_FILE]:
            self.files[argv[4]] = input or b""
            return ExecResult(0, "", "")
        if argv[:3] == ["sh", "-c", EXTRACT_INTO]:
            with tarfile.open(fileobj=io.BytesIO(input or b"")) as archive:
                for member in archive.getmembers():
                    if member.isfile():
                        data = archive.extractfile(member)
                        assert data is not None
                        path = f"{argv[4]}/{member.name}".replace("/./", "/")
                        self.files[path] = data.read()
                        self.files[path + ":mode"] = oct(member.mode).encode()
            return ExecResult(0, "", "")
        if argv[0] == "mktemp":
            self.made += 1
            return ExecResult(0, f"/tmp/labctl-provision.fake{self.made:04d}\n", "")
        if argv[0] == "/bin/sh":
            text = self.files[argv[1]].decode()
            proc = subprocess.run(["sh", "-c", text, "sh", *argv[2:]], capture_output=True, text=True)
            return ExecResult(proc.returncode, proc.stdout, proc.stderr)
        return ExecResult(0, "", "")


@pytest.fixture
def memory_lab(
    write_labfile: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, labdir: Path
) -> Path:
    monkeypatch.setitem(DRIVERS, Kind.NS, (__name__, "MemoryDriver"))
    monkeypatch.setenv("LABCTL_HOME", str(tmp_path / "home"))
    MemoryDriver.files.clear()
    MemoryDriver.calls.clear()
    RUNNING.clear()
    (labdir / "site" / "css").mkdir(parents=True)
    (labdir / "site" / "index.html").write_text("<h1>hi</h1>\n")
    (labdir / "site" / "css" / "a.css").write_text("body {}\n")
    (labdir / "motd").write_text("welcome\n")
    return write_labfile(
        """\
        name: mem
        defaults: {kind: ns, namespaces: [mnt, pid]}
        machines:
          a:
            provision:
              - shell: |
                  echo "first $0"
                  echo "to stderr" >&2
              - file: {src: site, dest: /srv/www}
              - file: {src: motd, dest: /etc/, mode: "0600"}
              - shell: {inline: 'echo "args: $1 $2"', args: [x, "y z"]}
          b:
            provision:
              - shell: echo one
              - shell: |
                  echo about to fail
                  exit 3
              - shell: echo never
          c: {}
        """
    )


def provisioner(labfile: Path) -> tuple[Provisioner, LabContext]:
    lab = load_lab(str(labfile))
    context = LabContext(lab)
    driver = MemoryDriver(context)
    return Provisioner(context, lambda _kind: driver), context


def test_steps_run_in_order_with_prefixed_output_and_are_recorded(
    memory_lab: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prov, context = provisioner(memory_lab)
    machine = context.lab.machine("a")
    assert prov.provision(machine) == "provisioned"
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("a | ")]
    assert lines == ["a | first sh", "a | to stderr", "a | args: x y z"]
    assert err.index("step 1/4 (shell)") < err.index("step 2/4 (file site -> /srv/www)")
    assert err.index("step 3/4 (file motd -> /etc/)") < err.index("step 4/4 (shell)... ")
    assert MemoryDriver.files["/srv/www/index.html"] == b"<h1>hi</h1>\n"
    assert MemoryDriver.files["/srv/www/css/a.css"] == b"body {}\n"
    assert MemoryDriver.files["/etc/motd"] == b"welcome\n"
    assert MemoryDriver.files["/etc/motd:mode"] == b"0o600"
    scripts = [argv for _, argv in MemoryDriver.calls if argv[0] == "/bin/sh"]
    assert [argv[2:] for argv in scripts] == [[], ["x", "y z"]]
    removed = [argv for _, argv in MemoryDriver.calls if argv[0] == "rm"]
    assert [argv[-1] for argv in removed] == [str(Path(argv[1]).parent) for argv in scripts]
    assert "provisioned_at" in context.state.machines()["a"]


def test_a_failing_step_stops_the_machine_and_names_step_code_and_output(memory_lab: Path) -> None:
    prov, context = provisioner(memory_lab)
    with pytest.raises(ProvisionError) as caught:
        prov.provision(context.lab.machine("b"))
    message = caught.value.message
    assert message.startswith("step 2/3 (shell) exited 3")
    assert "about to fail" in message and "one" not in message.split("\n", 1)[1]
    assert (
        caught.value.hint
        == "fix the step, then run labctl up (it goes on from this step) or labctl provision b (every step)"
    )
    ran = [MemoryDriver.files[argv[1]].decode() for _, argv in MemoryDriver.calls if argv[0] == "/bin/sh"]
    assert not any("never" in text for text in ran)
    assert "provisioned_at" not in context.state.machines().get("b", {})


def test_the_ansible_step_gets_the_lab_inventory_the_machine_and_its_vars(
    labdir: Path,
    write_labfile: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setitem(DRIVERS, Kind.NS, (__name__, "MemoryDriver"))
    monkeypatch.setenv("LABCTL_HOME", str(tmp_path / "home"))
    (labdir / "play.yml").write_text("- hosts: all\n  tasks: []\n")
    labfile = write_labfile(
        """\
        name: mem
        defaults: {kind: ns, namespaces: [mnt, pid]}
        machines:
          a:
            groups: [web]
            provision:
              - ansible: {playbook: play.yml, extra_vars: {port: 8080}}
        """
    )
    seen: dict[str, Any] = {}

    def fake_run(
        private: Path, inventory: Path, playbook: Path, limit: str, extra: dict[str, Any], on_line: Any
    ) -> int:
        seen.update(
            private=private, inventory=inventory.read_text(), playbook=playbook, limit=limit, extra=extra
        )
        on_line("PLAY [all]")
        return 0

    monkeypatch.setattr("labctl.provision.ansible.run_playbook", fake_run)
    prov, context = provisioner(labfile)
    prov.provision(context.lab.machine("a"))
    assert seen["limit"] == "a"
    assert seen["extra"] == {"port": 8080}
    assert seen["playbook"] == labdir / "play.yml"
    assert seen["private"] == context.data_dir / "ansible" / "a"
    assert "web:" in seen["inventory"] and "a:" in seen["inventory"]


def test_up_provisions_only_new_machines_unless_told(
    memory_lab: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["up", "a", "c"]) == 0
    assert "a: provisioned" in capsys.readouterr().err
    assert main(["up", "a"]) == 0
    assert "a: provisioned" not in capsys.readouterr().err
    assert main(["up", "--provision", "a"]) == 0
    assert "a: provisioned" in capsys.readouterr().err
    assert main(["provision", "a", "c"]) == 0
    err = capsys.readouterr().err
    assert "a | first sh" in err
    assert "c: nothing to provision" in err


def test_up_no_provision_skips_and_a_provision_failure_fails_up(
    memory_lab: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["up", "--no-provision", "b"]) == 0
    assert "b: step" not in capsys.readouterr().err
    assert main(["destroy", "b"]) == 0
    assert main(["up", "a", "b"]) == 1
    err = capsys.readouterr().err
    assert "error: b: step 2/3 (shell) exited 3" in err
    assert "up failed for 1 of 2 machines: b" in err
    assert "a: provisioned" in err
    # b never finished provisioning, so the next `up` tries again (a is done and left alone)
    assert main(["up", "a", "b"]) == 1
    err = capsys.readouterr().err
    assert "error: b: step 2/3 (shell) exited 3" in err
    assert "a: step" not in err


def test_up_resumes_provisioning_after_the_last_finished_step(
    memory_lab: Path, write_labfile: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["up", "b"]) == 1
    assert "b | one" in capsys.readouterr().err
    assert main(["up", "b"]) == 1
    err = capsys.readouterr().err
    assert "b: step 1/3 (shell): done before" in err
    assert "b | one" not in err  # step 1 finished in the first up: not run again
    assert "b | about to fail" in err
    text = memory_lab.read_text()  # the labfile, fixed: step 2 succeeds now
    write_labfile(text.replace("exit 3", "exit 0"))
    assert main(["up", "b"]) == 0
    err = capsys.readouterr().err
    # Only the failed step changed: the finished one still stands, the fixed one runs.
    assert "b: step 1/3 (shell): done before" in err
    assert "b | one" not in err and "b | about to fail" in err and "b | never" in err
    assert main(["provision", "b"]) == 0  # an explicit provision runs every step
    assert "b | one" in capsys.readouterr().err


def test_a_finished_step_that_changed_makes_every_step_run_again(
    memory_lab: Path, write_labfile: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["up", "b"]) == 1  # step 1 done, step 2 failed
    capsys.readouterr()
    text = memory_lab.read_text()
    write_labfile(text.replace("echo one", "echo uno").replace("exit 3", "exit 0"))
    assert main(["up", "b"]) == 0
    err = capsys.readouterr().err
    assert "done before" not in err
    assert "b | uno" in err and "b | about to fail" in err and "b | never" in err


def test_provision_refuses_machines_that_are_not_running(
    memory_lab: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["provision", "a"]) == 2  # a usage error, like exec on a stopped machine
    err = capsys.readouterr().err
    assert "error: not running: a" in err
    assert "labctl up a" in err


def test_each_script_runs_from_its_own_private_directory_then_it_is_removed(memory_lab: Path) -> None:
    # A fixed directory in a world-writable /tmp or /var/tmp lets a guest user plant or swap the
    # script that root then runs: every run gets a new one from mktemp -d (0700, atomic).
    prov, context = provisioner(memory_lab)
    prov.provision(context.lab.machine("a"))
    calls = [argv for _, argv in MemoryDriver.calls]
    made = [i for i, argv in enumerate(calls) if argv[0] == "mktemp"]
    assert len(made) == 2 and all(calls[i][:2] == ["mktemp", "-d"] for i in made)
    directories = [f"/tmp/labctl-provision.fake{n:04d}" for n in (1, 2)]
    for i, directory in zip(made, directories, strict=True):
        write, run, remove = calls[i + 1], calls[i + 2], calls[i + 3]
        assert write[:3] == ["sh", "-c", WRITE_FILE] and write[4].startswith(directory + "/")
        assert run[:2] == ["/bin/sh", write[4]]
        assert remove == ["rm", "-rf", "--", directory]
    # Nothing else names a path in a shared temporary directory.
    fixed = [a for argv in calls for a in argv if a.startswith(("/tmp", "/var/tmp"))]
    assert all(a.startswith(tuple(directories)) for a in fixed)


def test_a_script_is_never_uploaded_when_mktemp_fails(
    memory_lab: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_run = MemoryDriver.run

    def no_mktemp(self: MemoryDriver, machine: Machine, argv: Sequence[str], **kw: Any) -> ExecResult:
        if argv[0] == "mktemp":
            return ExecResult(1, "", "mktemp: failed to create directory: Read-only file system")
        return real_run(self, machine, argv, **kw)

    monkeypatch.setattr(MemoryDriver, "run", no_mktemp)
    prov, context = provisioner(memory_lab)
    with pytest.raises(ProvisionError, match=r"private directory .* Read-only file system") as caught:
        prov.provision(context.lab.machine("b"))
    assert caught.value.hint is not None and "mktemp" in caught.value.hint
    assert not [argv for _, argv in MemoryDriver.calls if argv[0] in ("sh", "/bin/sh")]


def test_a_tree_changed_after_validation_is_refused_at_run_time(memory_lab: Path, tmp_path: Path) -> None:
    # validate saw a plain site/; by the time the step runs, css/ leads to a stand-in for /root.
    (tmp_path / "root-standin").mkdir()
    (tmp_path / "root-standin" / "id_ed25519").write_text("PRIVATE KEY STAND-IN\n")
    prov, context = provisioner(memory_lab)
    css = memory_lab.parent / "site" / "css"
    css.rename(css.with_name("css-old"))
    css.symlink_to(tmp_path / "root-standin")
    with pytest.raises(
        ProvisionError, match=r"^step 2/4 \(file site -> /srv/www\) failed: .*css is a symlink"
    ):
        prov.provision(context.lab.machine("a"))
    assert not any(b"PRIVATE KEY" in data for data in MemoryDriver.files.values())
    assert not any(argv[:3] == ["sh", "-c", EXTRACT_INTO] for _, argv in MemoryDriver.calls)


def test_a_script_swapped_for_a_link_is_not_uploaded(
    memory_lab: Path, tmp_path: Path, write_labfile: Callable[..., Path]
) -> None:
    (tmp_path / "shadow-standin").write_text("root:$6$stand-in-hash:19000::::::\n")
    script = memory_lab.parent / "setup.sh"
    script.write_text("echo set up\n")
    labfile = write_labfile(
        """\
        name: mem
        machines:
          a: {kind: ns, namespaces: [mnt], provision: [{shell: {script: setup.sh}}]}
        """
    )
    prov, context = provisioner(labfile)
    script.unlink()
    script.symlink_to(tmp_path / "shadow-standin")
    with pytest.raises(ProvisionError, match=r"^step 1/1 \(shell setup\.sh\) failed: .*setup\.sh"):
        prov.provision(context.lab.machine("a"))
    assert not any(b"stand-in-hash" in data for data in MemoryDriver.files.values())


def test_tar_of_owns_files_by_root_and_applies_the_mode(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "f").write_text("x")
    (tree / "f").symlink_to("sub/f")
    with tarfile.open(fileobj=io.BytesIO(tar_of(tree, tree, 0o640)[0])) as archive:
        members = {m.name: m for m in archive.getmembers()}
    assert members["./sub/f"].mode == 0o640 and members["./sub/f"].uid == 0
    assert members["./sub"].mode == 0o755 and members["./sub"].uname == "root"
    assert members["./f"].issym() and members["./f"].linkname == "sub/f"


def test_line_splitter_joins_chunks_and_flushes_the_last_partial_line() -> None:
    lines: list[str] = []
    splitter = LineSplitter(lines.append)
    splitter.write(b"one\ntw")
    splitter.write(b"o\r\nthr")
    assert lines == ["one", "two"]
    splitter.flush_all()
    assert lines == ["one", "two", "thr"]
