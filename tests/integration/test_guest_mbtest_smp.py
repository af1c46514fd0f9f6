"""The multiboot test kernel (mbtest) starting its AP itself, and mbtest-1m (the same kernel linked at
1 MiB, where the loader put the hypervisor and the modules): the continuation of test_guest_mbtest.py,
whose helpers check the console the same way.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hvtrace.relocation import region_from_console
from tests.integration.conftest import RunFn, assert_clean
from tests.integration.test_guest_mbtest import (
    AP_AGAIN,
    AP_NOW,
    AP_REAL_GP,
    ARGS,
    LOGICAL_X2APIC,
    LOGICAL_XAPIC,
    MMAP_RE,
    UPPER_RE,
    check_mbtest_console,
    hv_region,
    run_mbtest,
)

pytestmark = [pytest.mark.slow]

#: Each test below once per back end: QEMU (SVM) and Bochs (VT-x).
BOTH_BACKENDS = pytest.mark.parametrize(
    ("backend", "vendor"),
    [
        pytest.param("qemu", "svm", marks=pytest.mark.qemu),
        pytest.param("bochs", "vmx", marks=pytest.mark.bochs),
    ],
)


@BOTH_BACKENDS
def test_mbtest_starts_its_ap_through_the_emulated_init_sipi(
    hvtrace_run: RunFn, mbtest: Path, backend: str, vendor: str
) -> None:
    args = "mbtest cpus=2"
    run = run_mbtest(hvtrace_run, mbtest, backend, cpus=2, args=args)
    lines = run.stdout.splitlines()
    check_mbtest_console(lines, vendor, args)
    assert "mbtest: step ap: PASS every AP started by INIT-SIPI-SIPI runs virtualized" in lines, run.stdout
    # the hypervisor saw the guest's INIT and SIPI (trapped ICR stores), and CPU 1 then ran the guest
    assert "guest: CPU 0 sent INIT to CPU 1 (APIC 1): waiting for SIPI" in lines
    assert "guest: CPU 0 sent SIPI vector 0x7 to CPU 1: it starts in real mode at 0x7000" in lines
    # INIT to the running (halted) AP: it leaves the guest, waits for SIPI and runs mbtest's AP code again
    assert AP_AGAIN in lines
    assert AP_REAL_GP in lines  # a VT-x entry with an error code in real mode failed (SDM 27.2.1.3)
    assert "guest: CPU 0 sent INIT to running CPU 1 (APIC 1): it waits for SIPI" in lines
    assert "guest: CPU 1 is in wait-for-SIPI after an INIT" in lines
    # INIT and SIPI back to back: the INIT is still taken (it failed when the SIPI overtook it)
    assert AP_NOW in lines, run.stdout
    # the AP's CPUID, once per start: ap, ap_init_again, ap_init_sipi_now, and logical_ipi's physical,
    # flat and cluster starts
    assert any(re.match(rf"^{vendor}: CPU 1 exits: .*CPUID=6 ", line + " ") for line in lines), run.stdout
    # issue 13 item 9: logical destination mode for the emulated INIT / SIPI (flat and cluster model)
    assert LOGICAL_XAPIC in lines, run.stdout
    # issue 18 item 3: CPU 1 waited for its SIPI six times (the start, five restarts), each in HLT
    # until the wake-up IPI: a look when it parks and one per wake-up, not a spin
    assert 6 <= park_looks(lines, 1) <= 6 * 4, run.stdout
    assert_clean(run)


PARK_RE = re.compile(r"^park: CPU (\d+) looked for its SIPI (\d+) times \(it sleeps in HLT between\)$")


def park_looks(lines: list[str], cpu: int) -> int:
    """How often the parked CPU ``cpu`` looked whether the guest started it (the hypervisor's count,
    printed at the end): once when it parks and once per wake-up from HLT."""
    looks = [int(m.group(2)) for line in lines if (m := PARK_RE.match(line)) and int(m.group(1)) == cpu]
    assert len(looks) == 1, "\n".join(lines)
    return looks[0]


@BOTH_BACKENDS
def test_an_ap_the_guest_never_starts_sleeps_the_whole_run(
    hvtrace_run: RunFn, mbtest: Path, backend: str, vendor: str
) -> None:
    """Issue 18 item 3: two CPUs, and mbtest without cpus=N never starts CPU 1. It stays parked in the
    hypervisor the whole run, asleep in HLT: it looked for its SIPI once (a spinning CPU looks millions
    of times), a wake-up or two at most for a stray interrupt, and it never ran the guest."""
    run = run_mbtest(hvtrace_run, mbtest, backend, cpus=2)
    lines = run.stdout.splitlines()
    check_mbtest_console(lines, vendor)
    assert "mbtest: step ap: SKIP (one CPU: no cpus=N on the command line)" in lines, run.stdout
    assert f"{vendor}: CPU 1 exits:" in lines, run.stdout  # no exit: the guest never ran there
    assert 1 <= park_looks(lines, 1) <= 3, run.stdout
    assert_clean(run)


@pytest.mark.qemu
def test_a_file_that_is_no_kernel_fails_with_guest_load(hvtrace_run: RunFn, tmp_path: Path) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(256)) * 64)  # 16 KiB: no multiboot header, no bzImage signature
    run = hvtrace_run("run", "--backend", "qemu", "--guest", str(junk))
    assert run.returncode == 9, run.describe()  # HV_STATUS_GUEST_LOAD
    assert "neither a bzImage nor a multiboot kernel (no header in the first 8 KiB)" in run.stdout
    assert "HVTRACE STATUS code=9 result=fail reason=guest_load" in run.stdout
    assert_clean(run)


@pytest.mark.bochs
def test_mbtest_starts_its_ap_through_the_x2apic_icr_msr(hvtrace_run: RunFn, mbtest: Path) -> None:
    """x2APIC mode (Bochs' corei7_skylake_x has it; QEMU 7.2's TCG does not): INIT and SIPI go through
    WRMSR 0x830, which the hypervisor intercepts and emulates like the xAPIC ICR stores."""
    args = "mbtest cpus=2 x2apic"
    run = run_mbtest(hvtrace_run, mbtest, "bochs", cpus=2, args=args)
    lines = run.stdout.splitlines()
    check_mbtest_console(lines, "vmx", args)
    ap_line = "mbtest: step ap: PASS every AP started by INIT-SIPI-SIPI (x2APIC ICR MSR) runs virtualized"
    assert ap_line in lines
    assert "guest: CPU 0 sent SIPI vector 0x7 to CPU 1: it starts in real mode at 0x7000" in lines
    assert AP_AGAIN in lines
    assert AP_NOW in lines
    assert AP_REAL_GP in lines  # a VT-x entry with an error code in real mode failed (SDM 27.2.1.3)
    # apic_global_disable's IA32_APIC_BASE.EN off and on (still in xAPIC mode), the x2APIC ICR in xAPIC
    # mode (#GP), EXTD, then INIT, SIPI, SIPI twice (the second round to the running AP), INIT and SIPI
    # back to back, and the self NMI: 13 WRMSRs
    # issue 13 item 9: then logical-mode INIT, SIPI, SIPI to nobody (cluster 1) and to the AP: 6 more;
    # then the MSR-policy steps' 19 intercepted WRMSRs (3 RTIT_*, 9 + 4 MTRR (msr_mtrr, mtrr_types),
    # 2 IA32_TSC, BIOS_UPDT_TRIG; EFER is the guest's own under VT-x): 38
    assert LOGICAL_X2APIC in lines, run.stdout
    counts = [line + " " for line in lines if line.startswith("vmx: CPU 0 exits:")]
    assert any("MSR_WRITE=38 " in line for line in counts), run.stdout
    assert_clean(run)


# ------------------------------------------------------------------------- a kernel linked at 1 MiB
@pytest.fixture(scope="module")
def mbtest_1m(mbtest: Path) -> Path:
    """hv/build/guests/mbtest-1m.elf: mbtest linked at 1 MiB (built with mbtest)."""
    elf = mbtest.with_name("mbtest-1m.elf")
    assert elf.is_file(), f"make -C hv did not build {elf}"
    return elf


def check_memory_from_1m(lines: list[str]) -> None:
    """The guest's mem_upper and mmap: one usable range from 1 MiB up to the hypervisor's region, which
    is reserved and holds the image at the top of RAM."""
    text = "\n".join(lines)
    m = UPPER_RE.search(text)
    assert m is not None, text
    mem_lower, mem_upper = int(m.group(1)), int(m.group(2))
    mmap = [(int(a, 16), int(n, 16), int(t)) for a, n, t in MMAP_RE.findall(text)]
    region = hv_region(lines)
    image = region_from_console(lines)
    assert image is not None, text
    image_start, region_end = image
    usable = [(a, n) for a, n, t in mmap if t == 1]
    above_1m = [(a, n) for a, n in usable if a + n > 0x100000]
    assert above_1m == [(0x100000, region - 0x100000)], mmap  # one range, from 1 MiB to the region
    assert mem_upper == (region - 0x100000) >> 10, (mem_upper, mmap)
    assert 600 <= mem_lower <= 640, mem_lower  # the conventional memory below the EBDA
    reserved = [(a, n) for a, n, t in mmap if t == 2 and a == region]
    assert reserved == [(region, region_end - region)], mmap  # image + pool: one reserved range
    assert region < image_start < region_end, (hex(region), hex(image_start), hex(region_end))
    # nothing usable above the hypervisor below 4 GiB: it sits at the top of RAM
    assert not [a for a, n in usable if region_end <= a < 1 << 32], mmap


@BOTH_BACKENDS
def test_a_kernel_linked_at_1m_runs_and_sees_ram_from_1m(
    hvtrace_run: RunFn, mbtest_1m: Path, gz_initrd: Path, backend: str, vendor: str
) -> None:
    run = hvtrace_run(
        "run", "--backend", backend, "--guest", str(mbtest_1m), "--initrd", str(gz_initrd), "--append", ARGS
    )
    assert run.returncode == 0, run.describe()
    lines = run.stdout.splitlines()
    check_mbtest_console(lines, vendor)
    check_memory_from_1m(lines)
    assert re.search(
        r"^guest: multiboot kernel .* loaded at \[0x100000-0x[0-9a-f]+\), entry 0x100", run.stdout, re.M
    )
    # the kernel file (module 0) and the initrd lay where its 1 MiB of BSS goes: moved high first
    moved = re.findall(r"^guest: module (\d) moved from 0x[0-9a-f]+ to (0x[0-9a-f]+)", run.stdout, re.M)
    assert [i for i, _ in moved] == ["0", "1"], run.stdout
    initrd = re.search(r"initrd (\d+) bytes at (0x[0-9a-f]+)$", run.stdout, re.M)
    assert initrd is not None, run.stdout
    assert int(initrd.group(2), 16) == int(moved[1][1], 16), run.stdout
    assert int(moved[1][1], 16) < hv_region(lines), run.stdout  # still guest RAM, below the region
    assert_clean(run)
