"""The AMD-V back end under QEMU TCG: blue pill on every CPU, the self-test guest, negative VMRUN paths."""

from __future__ import annotations

import re

import pytest

from tests.integration.conftest import RunFn, assert_clean

pytestmark = [pytest.mark.slow, pytest.mark.qemu]

STEPS = 18
# Exits each CPU takes under QEMU TCG (-cpu qemu64,+svm,+npt,+pdpe1gb), derived from
# boot/guests/selftest.c and the SVM exit codes (AMD APM Vol. 2 Appendix C):
# - VMMCALL: the EXIT_COUNT hypercall before and after every step (2 x STEPS), plus the PING, the
#   CPL3 call (intercepted, then #UD) and the SNAPSHOT request;
# - CPUID: 5 in the steps + the vendor check + CPUID 8000_0001h (SVM hidden) on AMD;
# - CR writes have one exit code per register: 2 each for CR0, CR3, CR4 (the two CR4 writes #GP);
# - MSR (one code for reads and writes): VM_CR read, TSC_AUX write, the two faulting reads;
# - WBINVD: the INVD step (TCG raises INVD as a WBINVD exit);
# - VMRUN and VMLOAD: one each, both reflected as #UD;
# - EXCP_UD: UD2 reflected, and XSETBV, which is #UD on qemu64 (no XSAVE, so no CR4.OSXSAVE);
# - NPF: the first touch of a memory-map hole.
EXPECTED_EXITS = {
    "CPUID": 7,
    "VMMCALL": 2 * STEPS + 3,
    "CR0_WRITE": 2,
    "CR3_WRITE": 2,
    "CR4_WRITE": 2,
    "MSR": 4,
    "WBINVD": 1,
    "VMRUN": 1,
    "VMLOAD": 1,
    "EXCP_UD": 2,
    "NPF": 1,
}


def exit_counts(stdout: str, cpu: int) -> dict[str, int]:
    m = re.search(rf"^svm: CPU {cpu} exits:(.*)$", stdout, re.MULTILINE)
    assert m, f"no exit counts for CPU {cpu}"
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(1))}


@pytest.mark.parametrize("cpus", [1, 4])
def test_selftest_passes_on_every_cpu(hvtrace_run: RunFn, cpus: int) -> None:
    run = hvtrace_run("run", "--backend", "qemu", "--cpus", str(cpus))
    out = run.stdout
    assert run.returncode == 0, run.describe()
    assert "virt: using the svm back end" in out
    # QEMU q35 with 256 MiB (tests/native/test_stage2.c, map (a)), 1 GiB NPT leaves (+pdpe1gb): top is
    # 1 TiB; GiB 1-1023 are 1G UC leaves, GiB 0 is a PD of 510 2M leaves and 2 PTs (the first 2 MiB and
    # the block holding the end of RAM); PML4 + 2 PDPTs + 1 PD + 2 PTs = 6 tables.
    assert "stage-2: 1023 1G, 510 2M, 1024 4K leaves, 6 tables" in out, run.describe()
    assert "FAIL" not in out, run.describe()
    for cpu in range(cpus):
        # ASID 0 is the host's: each CPU runs its guest under ASID index + 1.
        assert re.search(rf"^svm: CPU {cpu}: EFER.SVME set \(ASID {cpu + 1}, nested paging", out, re.M), (
            run.describe()
        )
        passes = re.findall(rf"^selftest: CPU {cpu} step (\w+): PASS$", out, re.MULTILINE)
        assert len(passes) == STEPS, run.describe()
        assert f"selftest: CPU {cpu}: {STEPS}/{STEPS} steps passed" in out
        assert exit_counts(out, cpu) == EXPECTED_EXITS, run.describe()
    assert f"virt: self-test passed on {cpus} of {cpus} CPUs" in out
    assert "HVTRACE STATUS code=0 result=pass reason=ok" in out
    assert_clean(run)


def test_bad_guest_state_fails_vmrun_naming_the_field(hvtrace_run: RunFn) -> None:
    run = hvtrace_run("run", "--backend", "qemu", "--append", "entry_fault=guest_state")
    assert run.returncode == 1, run.describe()
    assert "svm: CPU 0: VMRUN failed: VMEXIT_INVALID: save.efer.SVME = 0" in run.stdout, run.describe()
    assert "exit code 0xffffffffffffffff (VMEXIT_INVALID)" in run.stdout
    assert "HVTRACE STATUS code=1 result=fail reason=svm_vmrun_failed" in run.stdout
    assert_clean(run)


def test_missing_vmrun_intercept_fails_vmrun_naming_the_control(hvtrace_run: RunFn) -> None:
    run = hvtrace_run("run", "--backend", "qemu", "--append", "entry_fault=control")
    assert run.returncode == 1, run.describe()
    assert "svm: CPU 0: VMRUN failed: VMEXIT_INVALID: control.intercept VMRUN clear" in run.stdout, (
        run.describe()
    )
    assert "HVTRACE STATUS code=1 result=fail reason=svm_vmrun_failed" in run.stdout
    assert_clean(run)


def test_exit_without_handler_is_refused_with_ud_and_the_run_goes_on(hvtrace_run: RunFn) -> None:
    # unhandled_exit_test=1: RDPMC is intercepted with no handler; the guest runs it on the last CPU.
    # Issue 13 item 6: an instruction the guest can execute at will must not stop the run (it used to
    # end with reason=svm_unhandled_exit): #UD is reflected, reported once, and the self-test passes.
    run = hvtrace_run("run", "--backend", "qemu", "--cpus", "2", "--append", "unhandled_exit_test=1")
    out = run.stdout
    assert run.returncode == 0, run.describe()
    assert "selftest: CPU 1: 18/18 steps passed" in out, run.describe()
    assert re.search(
        r"^svm: CPU 1: exit without a handler: exit code 0x6f \(RDPMC\) at RIP 0x[0-9a-f]+: #UD reflected$",
        out,
        re.MULTILINE,
    ), run.describe()
    assert "selftest: CPU 1: unhandled_exit_test=1: RDPMC raised vector 6" in out, run.describe()
    assert "HVTRACE STATUS code=0 result=pass" in out, run.describe()
    assert "virt: self-test passed" in out, run.describe()
    assert_clean(run)
