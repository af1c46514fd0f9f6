"""Bad input and failure paths: each has its own exit code and leaves nothing behind."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hvtrace.host import kvm_info
from tests.integration.conftest import RunFn, assert_clean

pytestmark = [pytest.mark.slow]


@pytest.mark.parametrize(("backend", "tool", "package"), [("qemu", "qemu-system-x86_64", "qemu-system-x86"),
                                                         ("bochs", "bochs", "bochs")])  # fmt: skip
def test_missing_emulator_is_69(
    hvtrace_run: RunFn, tmp_path: Path, backend: str, tool: str, package: str
) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    env = dict(os.environ, PATH=str(empty))
    run = hvtrace_run("run", "--backend", backend, env=env)
    assert run.returncode == 69, run.describe()
    assert f"'{tool}' not found" in run.stderr
    assert f"apt-get install {package}" in run.stderr
    assert run.emulator_pid is None


def test_unknown_backend_is_64(hvtrace_run: RunFn) -> None:
    run = hvtrace_run("run", "--backend", "virtualbox")
    assert run.returncode == 64, run.describe()
    assert run.stderr.count("\n") == 1
    assert "unknown backend 'virtualbox'" in run.stderr


def test_zero_cpus_is_64(hvtrace_run: RunFn) -> None:
    run = hvtrace_run("run", "--cpus", "0")
    assert run.returncode == 64, run.describe()
    assert "--cpus" in run.stderr
    assert run.emulator_pid is None


@pytest.mark.qemu
def test_qemu_refusing_300_cpus_is_70_with_its_reason(hvtrace_run: RunFn) -> None:
    run = hvtrace_run("run", "--backend", "qemu", "--cpus", "300")
    assert run.returncode == 70, run.describe()
    assert "Invalid SMP CPUs 300" in run.stderr
    assert_clean(run)


@pytest.mark.qemu
def test_timeout_is_124(hvtrace_run: RunFn) -> None:
    run = hvtrace_run("run", "--backend", "qemu", "--append", "hang=1", "--timeout", "5")
    assert run.returncode == 124, run.describe()
    assert re.search(r"timeout: the hypervisor printed no final status line within 5 s", run.stderr)
    assert "CPUs online" in run.stdout  # it did boot, then hung
    assert_clean(run)


@pytest.mark.qemu
def test_kvm_refused_clearly_without_nested_virtualization(hvtrace_run: RunFn) -> None:
    if kvm_info().refusal() is None:
        pytest.skip("this host offers nested VT-x/SVM through KVM: nothing to refuse")
    run = hvtrace_run("run", "--accel", "kvm")
    assert run.returncode == 69, run.describe()
    assert "--accel kvm refused" in run.stderr
    assert run.emulator_pid is None


def test_doctor_reports_usable_backends() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "hvtrace", "doctor"], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "QEMU emulator version" in proc.stdout
    assert "backend qemu: usable" in proc.stdout
    assert "backend bochs: usable" in proc.stdout
    assert "gdb's Python: 3." in proc.stdout
