"""Host-side C tests of freestanding hv/ code (tests/native: the hypervisor's own sources under the host
gcc with ASan/UBSan). Each builds into a temporary directory, runs, and must print "N checks passed"
with at least the number of checks it had when written (so a test that lost its cases fails too):

- test_stage2: the stage-2 identity map, the MTRR logic, the EPT/NPT encoders, hole mapping and the
  retyping of leaves for a guest's MTRRs;
- test_msr_policy: the MSR policy table (hv/core/msr_policy.c) and SVM's EFER bits (hv/svm/efer.c):
  every MSR issue 13 names as reaching the host (Intel PT, PMU, SYSCFG, TOP_MEM, IORRs, HWCR,
  BIOS_UPDT_TRIG...) exits and is refused, the MTRRs are emulated with the SDM's checks, and exactly the
  listed MSRs pass through on each back end;
- test_isolation: the hypervisor-range list guest isolation hides (hv/core/hv_ranges.c): exact, or
  refused (-1) past GUEST_HV_RANGES_MAX pieces, never truncated (issue 13 item 7: it failed open);
- test_apic_policy: the xAPIC write policy (hv/core/guest/apic_policy.c): every offset of the page, every LVT
  delivery mode, ICR modes and vectors, sizes and alignments (SDM Vol. 3A Table 11-1, 11.5.1, 11.6.1);
  and its fetch policy: the instructions a single step cannot hold (MOV SS, software interrupts,
  SYSCALL/SYSENTER, HLT/MWAIT) are refused, with or without prefixes.
- test_breaks: exit-break evaluation (hv/core/trace/break_compile.c, breaks.c): the per-CPU pre-decoded
  form agrees with abi.h's meaning for every op on boundary values and for random whole tables, and
  while a tool rewrites the table (abi.h's protocol) no stale or torn entry fires;
- test_uart: the gdb stub's UART layer (hv/core/gdbstub/uart.c) against a 16550 model: FIFOs off while
  the guest runs, on while the stub serves gdb, and no received byte lost by a switch (issue 17);
- test_cpuid: the guest's CPUID (hv/core/guest/cpuid_leaves.c) against the host CPU: every leaf the
  exit's fast path executes itself (not cpuid_leaf_adjusted()) is the CPU's own answer, under any guest
  CR4 (issue 18); the hypervisor's leaves and CR4 mirrors as documented;
- test_string: the word-at-a-time memset/memcpy/memcmp (hv/core/lib/string.c) against byte references,
  every size 0..64 at every misalignment, guard bytes untouched;
- test_insn_len: SVM's instruction-length decoder without next-RIP saving (hv/svm/insn_len.c): the
  opcode each exit code implies (HLT's one-byte F4 among them), prefixes, REX only in 64-bit mode,
  cut-short bytes and the 15-byte limit (AMD APM Vol. 3 1.1, 1.2, Appendix A);
- test_ring: the exit ring's producer (hv/core/trace/ring.c, ring.h) one step at a time: a ring with no
  room left stays at 0 (the inline reservation's SUB must not wrap it), every slot keeps the CPU
  ring_init wrote, the drop flag lands on the first record after a drop only (issue 18).
"""

import re
import subprocess
from pathlib import Path

import pytest

NATIVE = Path(__file__).resolve().parents[1] / "native"


# No skip when gcc or make is missing: the build step fails and says why.
@pytest.mark.parametrize(
    ("target", "at_least"),
    [
        ("test_stage2", 1000),
        ("test_msr_policy", 400),
        ("test_isolation", 100),
        ("test_apic_policy", 2000),
        ("test_string", 500000),
        ("test_breaks", 1000000),
        ("test_uart", 68),
        ("test_cpuid", 850),
        ("test_insn_len", 24),
        ("test_ring", 127),
    ],
)
def test_native_checks(tmp_path: Path, target: str, at_least: int) -> None:
    build = subprocess.run(
        ["make", "-C", str(NATIVE), f"O={tmp_path}", target], capture_output=True, text=True, check=False
    )
    assert build.returncode == 0, build.stdout + build.stderr
    run = subprocess.run([str(tmp_path / target)], capture_output=True, text=True, check=False, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    passed = re.search(r"^(\d+) checks passed$", run.stdout, re.MULTILINE)
    assert passed is not None, run.stdout
    assert int(passed.group(1)) >= at_least, run.stdout
