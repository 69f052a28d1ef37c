"""The accelerator choice: KVM when usable, TCG with one notice otherwise, HostError for accel: kvm."""

from __future__ import annotations

import pytest

from labctl import accel
from labctl.errors import HostError
from labctl.labfile.models import Accel

LOCAL = "qemu:///system"


@pytest.fixture
def no_kvm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("labctl.host.kvm_usable", lambda: (False, "the CPU shows no vmx/svm flag"))
    monkeypatch.setattr(accel, "_noticed", set())


@pytest.fixture
def with_kvm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("labctl.host.kvm_usable", lambda: (True, "CPU flag vmx, /dev/kvm usable"))


@pytest.mark.usefixtures("no_kvm")
def test_auto_falls_back_to_tcg_with_one_notice(capsys: pytest.CaptureFixture[str]) -> None:
    choice = accel.choose(Accel.AUTO, LOCAL)
    assert choice.engine is accel.Engine.TCG
    assert choice.engine.domain_type == "qemu"
    accel.notice_once(choice, LOCAL)
    accel.notice_once(choice, LOCAL)
    lines = [line for line in capsys.readouterr().err.splitlines() if line]
    assert len(lines) == 1
    assert "emulated" in lines[0] and "no vmx/svm" in lines[0]


@pytest.mark.usefixtures("no_kvm")
def test_kvm_without_kvm_is_a_host_error_with_the_reason() -> None:
    with pytest.raises(HostError) as raised:
        accel.choose(Accel.KVM, LOCAL)
    assert "no vmx/svm" in raised.value.message
    assert raised.value.exit_code == 1
    assert raised.value.hint and "accel: tcg" in raised.value.hint


@pytest.mark.usefixtures("with_kvm")
def test_auto_and_kvm_use_kvm_when_usable(capsys: pytest.CaptureFixture[str]) -> None:
    for setting in (Accel.AUTO, Accel.KVM):
        choice = accel.choose(setting, LOCAL)
        assert choice.engine is accel.Engine.KVM
        assert choice.engine.domain_type == "kvm"
        accel.notice_once(choice, LOCAL)
    assert capsys.readouterr().err == ""


@pytest.mark.usefixtures("with_kvm")
def test_tcg_always_emulates_silently(capsys: pytest.CaptureFixture[str]) -> None:
    choice = accel.choose(Accel.TCG, LOCAL)
    assert choice.engine is accel.Engine.TCG
    accel.notice_once(choice, LOCAL)
    assert capsys.readouterr().err == ""


def test_local_and_remote_uris() -> None:
    from labctl.placement import is_remote

    assert not is_remote("qemu:///system")
    assert not is_remote("qemu:///session")
    assert is_remote("qemu+ssh://root@lab1/system")
    assert is_remote("qemu://lab1/system")


def test_this_host_matches_proc_cpuinfo() -> None:
    """On this host (no vmx/svm), auto means TCG; on a KVM host it means KVM."""
    from labctl import host

    usable, _why = host.kvm_usable()
    expected = accel.Engine.KVM if usable else accel.Engine.TCG
    assert accel.choose(Accel.AUTO, LOCAL).engine is expected
