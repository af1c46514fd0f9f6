"""The VT-x self-test under QEMU+KVM with nested VT-x: the real-world Intel path.

It runs only where `hvtrace doctor` would find nested VT-x (kvm_intel nested=Y on a VMX host); everywhere
else it is skipped with the reason printed. The project's CI machines have none (see PLATFORMS.md).
"""

from __future__ import annotations

import re

import pytest

from hvtrace.host import kvm_info
from tests.integration.conftest import RunFn, assert_clean
from tests.integration.test_vmx_bochs import EXPECTED_EXITS, STEPS, exit_counts

pytestmark = [pytest.mark.slow, pytest.mark.qemu]


def require_nested_vmx() -> None:
    info = kvm_info()
    if not info.nested_vmx:
        reason = info.refusal() or "KVM exposes nested SVM, not VT-x"
        pytest.skip(f"QEMU+KVM with nested VT-x unavailable: {reason}")


@pytest.mark.parametrize("cpus", [1, 2])
def test_selftest_passes_under_kvm(hvtrace_run: RunFn, cpus: int) -> None:
    require_nested_vmx()
    run = hvtrace_run("run", "--backend", "qemu", "--accel", "kvm", "--cpus", str(cpus))
    assert run.returncode == 0, run.describe()
    assert "virt: using the vmx back end" in run.stdout
    for cpu in range(cpus):
        assert f"selftest: CPU {cpu}: {STEPS}/{STEPS} steps passed" in run.stdout
        assert exit_counts(run.stdout, cpu) == EXPECTED_EXITS
    assert not re.search(r"FAIL", run.stdout)
    assert_clean(run)


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ("control", "VM-instruction error 7 (VM entry with invalid control field(s))"),
        ("guest_state", "VM-entry failure, invalid guest state: exit reason 33"),
    ],
)
def test_entry_faults_under_kvm(hvtrace_run: RunFn, fault: str, expected: str) -> None:
    require_nested_vmx()
    run = hvtrace_run("run", "--backend", "qemu", "--accel", "kvm", "--append", f"entry_fault={fault}")
    assert run.returncode == 1, run.describe()
    assert expected in run.stdout
    assert_clean(run)
