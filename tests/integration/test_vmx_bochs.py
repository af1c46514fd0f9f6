"""The VT-x back end in Bochs 2.7: blue pill on every CPU, the self-test guest, negative entry paths."""

from __future__ import annotations

import re

import pytest

from tests.integration.conftest import RunFn, assert_clean

pytestmark = [pytest.mark.slow, pytest.mark.bochs]

STEPS = 18
# Exits each CPU takes, derived from boot/guests/selftest.c:
# - VMCALL: every step reads the EXIT_COUNT hypercall before and after itself (2 x STEPS), plus the
#   PING, the CPL3 call and the SNAPSHOT request;
# - CPUID: 5 in the steps + the vendor check; CR_ACCESS 2+2+2; MSR_READ 1 intercepted + 2 faulting;
# - one each of INVD, MSR_WRITE, VMXON, VMREAD, EXCEPTION_NMI (#UD reflected) and EPT_VIOLATION (first
#   touch of a memory-map hole); XSETBV 2.
EXPECTED_EXITS = {
    "CPUID": 6,
    "VMCALL": 2 * STEPS + 3,
    "CR_ACCESS": 6,
    "MSR_READ": 3,
    "MSR_WRITE": 1,
    "INVD": 1,
    "VMXON": 1,
    "VMREAD": 1,
    "EXCEPTION_NMI": 1,
    "XSETBV": 2,
    "EPT_VIOLATION": 1,
}


def exit_counts(stdout: str, cpu: int) -> dict[str, int]:
    m = re.search(rf"^vmx: CPU {cpu} exits:(.*)$", stdout, re.MULTILINE)
    assert m, f"no exit counts for CPU {cpu}"
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(1))}


@pytest.mark.parametrize("cpus", [1, 2])
def test_selftest_passes_on_every_cpu(hvtrace_run: RunFn, cpus: int) -> None:
    run = hvtrace_run("run", "--backend", "bochs", "--cpus", str(cpus))
    out = run.stdout
    assert run.returncode == 0, run.describe()
    assert "virt: using the vmx back end" in out
    # Bochs' 256 MiB map (see tests/native/test_stage2.c, map (b)): RAM and ACPI data below 256 MiB,
    # then UC up to 4 GiB: 1 GiB leaves for 1-4 GiB, 2 MiB leaves for 2 MiB-1 GiB, 4 KiB leaves only
    # in the first 2 MiB where the legacy holes change the type.
    assert "stage-2: 3 1G, 511 2M, 512 4K leaves, 4 tables" in out, run.describe()
    assert "FAIL" not in out, run.describe()
    for cpu in range(cpus):
        assert re.search(rf"^vmx: CPU {cpu}: VMXON ok \(revision 0x[0-9a-f]+, TRUE controls", out, re.M)
        passes = re.findall(rf"^selftest: CPU {cpu} step (\w+): PASS$", out, re.MULTILINE)
        assert len(passes) == STEPS, run.describe()
        assert f"selftest: CPU {cpu}: {STEPS}/{STEPS} steps passed" in out
        assert exit_counts(out, cpu) == EXPECTED_EXITS
    assert f"virt: self-test passed on {cpus} of {cpus} CPUs" in out
    assert_clean(run)


def test_disallowed_control_fails_vmlaunch_with_named_error(hvtrace_run: RunFn) -> None:
    run = hvtrace_run("run", "--backend", "bochs", "--append", "entry_fault=control")
    assert run.returncode == 1, run.describe()
    assert "VMLAUNCH failed: VM-instruction error 7 (VM entry with invalid control field(s))" in run.stdout
    assert "HVTRACE STATUS code=1 result=fail reason=virt_launch" in run.stdout
    assert_clean(run)


def test_bad_guest_state_is_an_entry_failure_named_by_bochs(hvtrace_run: RunFn) -> None:
    run = hvtrace_run("run", "--backend", "bochs", "--append", "entry_fault=guest_state")
    assert run.returncode == 1, run.describe()
    assert "VM-entry failure, invalid guest state: exit reason 33 (INVALID_GUEST_STATE)" in run.stdout
    assert "HVTRACE STATUS code=1 result=fail reason=vmx_entry_failure" in run.stdout
    # Bochs names the exact failed check in its log, which the launcher keeps on failure.
    assert run.kept_dir is not None, run.describe()
    assert "VMENTER FAIL: RFLAGS[1] cleared" in (run.kept_dir / "bochs.log").read_text(errors="replace")
    assert_clean(run)


def test_exit_without_a_handler_is_refused_with_ud_and_the_run_goes_on(hvtrace_run: RunFn) -> None:
    # unhandled_exit_test=1: RDPMC exiting is on with no handler; the guest runs RDPMC on the last CPU.
    # Issue 13 item 6: it used to end the run (reason=vmx_unhandled_exit); now #UD is reflected.
    run = hvtrace_run("run", "--backend", "bochs", "--cpus", "2", "--append", "unhandled_exit_test=1")
    assert run.returncode == 0, run.describe()
    assert re.search(
        r"^vmx: CPU 1: exit without a handler: exit reason 15 \(RDPMC\) at RIP 0x[0-9a-f]+: #UD reflected$",
        run.stdout,
        re.MULTILINE,
    ), run.describe()
    assert "selftest: CPU 1: unhandled_exit_test=1: RDPMC raised vector 6" in run.stdout, run.describe()
    assert "HVTRACE STATUS code=0 result=pass" in run.stdout, run.describe()
    assert_clean(run)
