"""The chaos guest (boot/guests/chaos) against the real hypervisor: QEMU/SVM with 2 CPUs and Bochs/VT-x
with 1 CPU, a bounded seeded run each (issue 13, "Must show").

What a run must show, from the host side:
- the hypervisor never stops: the run ends by the guest's own exit (isa-debug-exit, reason
  guest_debug_exit) with the guest's code 0 (no unexpected fault, every CPU finished, every INIT'd CPU
  rejoined);
- the op sequence is the seed's: each CPU's printed checksum equals the one computed here;
- every ring's sequence numbers are continuous (no record lost, none repeated);
- every guest access to hypervisor memory that got #GP is one security record (HV_REC_SECURITY);
- the memory the hypervisor lists as immutable (discovery header: image code and read-only data, host
  page tables, each CPU's GDT/TSS/IDT and MSR and I/O permission maps) hashes the same once every CPU
  runs as a guest and after the run, read from outside the machine: QEMU's shared RAM file, Bochs RAM
  dumps (the "before" one at the first VM exit after the guest's entry, by the Bochs debugger);
- a guest printing a fake `HVTRACE STATUS ... reason=ok` line does not change the status the host
  reports, and (Bochs) a well-formed record frame it writes to port 0xE9 never becomes a record.
The default op mask is every class: INIT/SIPI of running APs, cross-modifying code, any CR0/CR4 value,
the forgeries, xAPIC stores at any offset with random LVT values, and code in the xAPIC page (all of
them stopped the hypervisor or fooled the host before issue 13).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from elftools.elf.elffile import ELFFile

from hvtrace.abi import HvDiscovery, HvExitKind, HvRecFlag
from hvtrace.image import ensure_image
from hvtrace.launch import BochsSession
from hvtrace.launch.guest import GuestSpec
from hvtrace.launch.memory import GUEST_MIN_MEMORY_MB
from hvtrace.relocation import slide_from_console
from hvtrace.status import StatusLine
from hvtrace.trace.capture import Capture
from hvtrace.trace.discovery import discover
from hvtrace.trace.immutable import Fingerprint, differences, fingerprint
from hvtrace.trace.records import Records
from hvtrace.trace.sources import DumpSource, MemorySource
from tests.integration.conftest import RunFn, assert_clean, built_guest

pytestmark = [pytest.mark.slow]

START_RE = re.compile(r"^chaos: start seed=(0x[0-9a-f]+) ops=(\d+) cpus=(\d+) classes=(0x[0-9a-f]+)")
CPU_RE = re.compile(
    r"^chaos: cpu (\d+) ops=(\d+) checksum=(0x[0-9a-f]+) hv_tried=(\d+) hv_gp=(\d+) nmi_sent=\d+ "
    r"init_ok=(\d+) init_fail=(\d+) init_skip=\d+ joins=(\d+) unexpected=(\d+) faults:"
)
DONE_RE = re.compile(
    r"^chaos: done cpus=(\d+) ops=(\d+) hv_tried=(\d+) hv_gp=(\d+) unexpected=(\d+) code=(\d+)"
)
STATUS_RE = re.compile(r"^HVTRACE STATUS code=(\d+) result=(\w+) reason=(\w+)(?: guest_code=(\d+))?")
M64 = (1 << 64) - 1
INIT_CLASS = 18  # chaos.c C_INIT: INIT + SIPI of a running AP
APIC_PAGE = 0xFEE00000
#: xAPIC offsets whose stores the write policy may change or refuse (security records): the LVTs, ICR low.
APIC_POLICY_CHECKED = {0x2F0, 0x300, 0x320, 0x330, 0x340, 0x350, 0x360, 0x370}
IOCH_CLASS = 15  # chaos.c C_IOCH: I/O to the hypervisor's channel ports (COM2, 0xE9)


@pytest.fixture(scope="module")
def chaos_elf() -> Path:
    return built_guest("chaos")


# ---------------------------------------------------------------------------------- the op sequence
def mix64(z: int) -> int:
    """chaos.c mix64 (splitmix64's finaliser)."""
    z = (z + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def sequence_checksum(seed: int, classes: int, cpu: int, ops: int) -> int:
    """What chaos.c run_ops() folds into a CPU's checksum: a pure function of (seed, cpu, op index)."""
    enabled = [k for k in range(32) if classes >> k & 1]
    checksum = 0
    for i in range(ops):
        z = mix64(seed ^ mix64(cpu << 32 | i))
        cls = enabled[(z >> 32) % len(enabled)]
        r: list[int] = []
        for _ in range(3):
            z = mix64(z)
            r += [z & 0xFFFFFFFF, z >> 32]
        word = (cls << 56) ^ (r[0] << 24) ^ r[1] ^ (r[2] << 32) ^ r[3] ^ (r[4] << 7) ^ r[5]
        checksum = mix64(checksum ^ (word & M64))
    return checksum


# ------------------------------------------------------------------------------------------ a run
@dataclass
class ChaosRun:
    console: list[str]
    recs: Records
    lost: int
    cpus: int
    slide: int
    immutable_before: Fingerprint
    immutable_after: Fingerprint
    #: The hypervisor's status line, from its private channel (the guest's forged lines never land there).
    status: StatusLine | None


def readonly_image(elf: Path) -> tuple[int, int, int]:
    """From the ELF: the image's link address, where its last section before .data ends (.text, .rodata
    and the build-id note come first), and where .data begins."""
    with elf.open("rb") as fh:
        ef = ELFFile(fh)
        data = ef.get_section_by_name(".data")
        assert data is not None, f"{elf}: no .data"
        before = [
            s for s in ef.iter_sections() if s["sh_flags"] & 2 and s["sh_addr"] < data["sh_addr"]
        ]  # ALLOC
        start = min(int(s["sh_addr"]) for s in before)
        return start, max(int(s["sh_addr"] + s["sh_size"]) for s in before), int(data["sh_addr"])


def launched_header(src: MemorySource, cpus: int, timeout: float = 60.0) -> HvDiscovery:
    """The discovery header once every CPU runs as a guest: all immutable ranges are listed and final."""
    deadline = time.monotonic() + timeout
    while True:
        h = discover(src, elf=ensure_image()).header
        if h.launched == (1 << cpus) - 1 or time.monotonic() > deadline:
            assert h.launched == (1 << cpus) - 1, f"launched mask {h.launched:#x} after {timeout} s"
            return h
        time.sleep(0.05)


def bochs_fingerprint(session: BochsSession, *, before: bool) -> Fingerprint:
    with DumpSource.raw(session.dump_files(before=before)) as src:
        return fingerprint(src, launched_header(src, session.cpus, timeout=0))


def guest_entry(elf: Path) -> int:
    with elf.open("rb") as fh:
        return int(ELFFile(fh)["e_entry"])


def start_capture(backend: str, cpus: int, spec: GuestSpec, timeout: float) -> Capture:
    """Capture.start, except that under Bochs RAM is dumped at the first VM exit after the guest's first
    instruction (every CPU launched: one CPU) and at the end (BochsSession.dump_files)."""
    if backend != "bochs":
        return Capture.start(backend=backend, cpus=cpus, guest=spec, timeout=timeout, boot_timeout=60)
    cmdline = "trace_e9=1"  # the records travel as frames on port 0xE9
    session = BochsSession(
        cpus=cpus, memory_mb=GUEST_MIN_MEMORY_MB, cmdline=cmdline, timeout=timeout, guest=spec,
        dump_memory=True, dump_before_at=guest_entry(spec.kernel),
    )  # fmt: skip
    session.start()
    try:
        # Capture.start builds its own session, without the dump options: attach to this one.
        return Capture._attach_session(session, backend, cmdline, lossless=True, boot_timeout=60, elf=None)
    except BaseException:
        session.close()
        raise


def run_chaos(backend: str, cpus: int, args: str, elf: Path, timeout: float) -> ChaosRun:
    spec = GuestSpec(elf, cmdline=args)
    with start_capture(backend, cpus, spec, timeout) as cap:
        ram = cap.memory
        if ram is not None:  # QEMU: the live RAM file, before the run goes on
            before = fingerprint(ram, launched_header(ram, cpus))
        recs = cap.collect()  # until the run ends (the rings outlive QEMU in the RAM file)
        if ram is not None:
            after = fingerprint(ram, discover(ram, elf=ensure_image()).header)
        else:
            assert isinstance(cap.session, BochsSession)
            assert any("Caught VMEXIT breakpoint" in line for line in cap.session.stdout_lines)
            before = bochs_fingerprint(cap.session, before=True)
            after = bochs_fingerprint(cap.session, before=False)
            flip_checked(cap.session, after)
        slide = slide_from_console(cap.console) or 0
        assert cap.session is not None  # start_capture boots a session of its own
        status = cap.session.status
        return ChaosRun(list(cap.console), recs, cap.progress.lost, cpus, slide, before, after, status)


def flip_checked(session: BochsSession, after: Fingerprint) -> None:
    """The check can fail: one byte flipped in the "after" dump, in the last immutable range (a CPU's I/O
    permission map), is a difference."""
    base, length = after.ranges[-1]
    seg_base, path = max((b, p) for b, p in session.dump_files() if b <= base)
    with path.open("r+b") as fh:
        fh.seek(base - seg_base + length // 2)
        byte = fh.read(1)
        fh.seek(-1, 1)
        fh.write(bytes([byte[0] ^ 0x40]))
    diff = differences(after, bochs_fingerprint(session, before=False))
    assert diff == [f"[{base:#x}-{base + length:#x}) changed (range {len(after.ranges) - 1})"], diff


def check_chaos(run: ChaosRun, cpus: int) -> None:
    lines = run.console
    shown = "\n".join(lines[-60:])
    # The hypervisor never stopped: its own status line says the guest ended the run, with code 0. It is
    # taken from the hypervisor's channel: the merged console interleaves two streams (under Bochs the
    # guest's port-0xE9 text arrives apart from COM1), so a forged line may come after the real one.
    st = run.status
    assert st is not None, shown
    assert (st.reason, st.guest_code, st.code, st.result) == ("guest_debug_exit", 0, 0, "pass"), shown
    assert st.line in lines, shown
    # The guest's own account: every CPU finished its ops, nothing unexpected, every INIT'd CPU rejoined.
    start = next(m for m in map(START_RE.match, lines) if m)
    seed, ops, ncpus, classes = int(start[1], 16), int(start[2]), int(start[3]), int(start[4], 16)
    assert ncpus == cpus
    per_cpu = {int(m[1]): m for m in map(CPU_RE.match, lines) if m}
    assert sorted(per_cpu) == list(range(cpus)), shown
    init_ok = 0
    for n, m in per_cpu.items():
        assert int(m[2]) == ops, m[0]
        assert int(m[9]) == 0, m[0]  # unexpected faults
        assert int(m[7]) == 0, m[0]  # INITs without a rejoin
        # Same seed, same sequence: the checksum is the one the seed gives, computed here.
        assert int(m[3], 16) == sequence_checksum(seed, classes, n, ops), m[0]
        init_ok += int(m[6])
    if cpus > 1 and classes >> INIT_CLASS & 1:
        joins = sum(int(m[8]) for m in per_cpu.values()) - cpus
        assert init_ok > 0, shown  # INIT + SIPI happened
        assert joins == init_ok, shown  # and each target rejoined
    done = next(m for m in map(DONE_RE.match, lines) if m)
    hv_gp = int(done[4])
    assert int(done[5]) == 0, done[0]  # unexpected
    assert int(done[6]) == 0, done[0]  # the guest's exit code
    assert 0 < hv_gp <= int(done[3]), done[0]
    # Every ring's sequence numbers are continuous.
    recs = run.recs
    assert len(recs) > 0
    for cpu in range(cpus):
        seq = np.sort(recs[recs["cpu"] == cpu]["seq"].astype(np.int64))
        assert len(seq) > 0, f"no record of CPU {cpu}"
        if run.lost == 0:
            assert (np.diff(seq) == 1).all(), f"CPU {cpu}: gaps or repeats in the sequence numbers"
    dropped = int(((recs["flags"] & int(HvRecFlag.DROPPED_BEFORE)) != 0).sum())
    # Every blocked access to hypervisor memory is a security record (exactly, unless records were lost).
    flagged = recs[(recs["flags"] & int(HvRecFlag.SECURITY)) != 0]
    # The other kind: I/O to the hypervisor's hidden UART (COM2, the ioch class), flagged as it is tried.
    hidden_io = flagged[flagged["kind"] == int(HvExitKind.IO)]
    assert ((hidden_io["arg0"] >= 0x2F8) & (hidden_io["arg0"] <= 0x2FF)).all(), hidden_io["arg0"]
    if classes >> IOCH_CLASS & 1 and run.lost == 0:
        assert len(hidden_io) > 0, "the ioch class ran, and no COM2 access was flagged"
    # The third: xAPIC stores the write policy changed or refused (hv/core/guest/apic_policy.c): only LVT
    # entries (random values of the apicr class) and ICR low are ever flagged, never another register.
    # Such a record's gpa is the register's address (an emulated store's exit, or a single step's).
    on_apic = (flagged["gpa"] & ~np.uint64(0xFFF)) == APIC_PAGE
    apic_offsets = {int(g) & 0xFFF for g in flagged[on_apic]["gpa"]}
    assert apic_offsets <= APIC_POLICY_CHECKED, sorted(apic_offsets)
    security = int(((flagged["kind"] == int(HvExitKind.STAGE2_FAULT)) & ~on_apic).sum())
    assert security + int(on_apic.sum()) + len(hidden_io) == len(flagged), flagged["kind"]
    if run.lost == 0 and dropped == 0:
        assert security == hv_gp, f"{security} security records, the guest got #GP {hv_gp} times"
    else:
        assert security <= hv_gp, (
            f"{security} security records > {hv_gp} (lost {run.lost}, dropped {dropped})"
        )
    check_immutable(run)


def check_immutable(run: ChaosRun) -> None:
    """What the hypervisor lists as immutable is what the ABI says, and hashes the same after the run."""
    ranges = run.immutable_before.ranges
    # The image (first, checked against the ELF), 6 host page-table pieces, then per CPU its GDT/TSS/IDT
    # and its MSR and I/O permission maps.
    assert len(ranges) == 7 + 3 * run.cpus, ranges
    (base, length), (link, end, data) = ranges[0], readonly_image(ensure_image())
    assert base == link + run.slide, (ranges[0], link, run.slide)
    assert end <= link + length <= data, (ranges[0], link, end, data)
    assert run.immutable_before.total_bytes > length
    assert differences(run.immutable_before, run.immutable_after) == []


# ---------------------------------------------------------------------------------------- the tests
def test_sequence_checksum_depends_on_seed_cpu_and_classes() -> None:
    """The host-side model of the op sequence can tell seeds, CPUs and class masks apart."""
    base = sequence_checksum(1, 0x3FFF, 0, 50)
    assert base == sequence_checksum(1, 0x3FFF, 0, 50)
    assert base != sequence_checksum(2, 0x3FFF, 0, 50)
    assert base != sequence_checksum(1, 0x3FFF, 1, 50)
    assert base != sequence_checksum(1, 0x3FFE, 0, 50)


@pytest.mark.qemu
def test_chaos_guest_under_qemu_svm_2_cpus(chaos_elf: Path) -> None:
    run = run_chaos("qemu", 2, "chaos seed=7 ops=1500 cpus=2", chaos_elf, timeout=120)
    check_chaos(run, 2)


@pytest.mark.bochs
def test_chaos_guest_under_bochs_vmx_1_cpu(chaos_elf: Path) -> None:
    run = run_chaos("bochs", 1, "chaos seed=7 ops=1500 cpus=1", chaos_elf, timeout=150)
    check_chaos(run, 1)


@pytest.mark.qemu
def test_chaos_cross_modifying_code_under_qemu_svm_2_cpus(chaos_elf: Path) -> None:
    """The xmc class alone: each CPU rewrites the other's code only as SDM Vol. 3A 8.1.3 allows (write,
    flag, the target serializes with CPUID before it runs it). Before, a CPU stored into code the other
    was running: QEMU's TCG derailed the target into zeroed RAM and the run never ended."""
    run = run_chaos("qemu", 2, "chaos seed=5 ops=20000 cpus=2 classes=xmc", chaos_elf, timeout=150)
    check_chaos(run, 2)


@pytest.mark.parametrize(
    "backend", [pytest.param("qemu", marks=pytest.mark.qemu), pytest.param("bochs", marks=pytest.mark.bochs)]
)
@pytest.mark.parametrize(("first", "ops"), [(398971, 398973), (935900, 935937)])
def test_chaos_survives_code_in_the_xapic_page_that_wrecks_its_stack(
    hvtrace_run: RunFn, chaos_elf: Path, backend: str, first: int, ops: int
) -> None:
    """Two ends of the 1,000,000-op Bochs run of seed 6, replayed alone (first=). Ops 398971-398972: smc
    leaves the TPR at BCh, apicx runs it, BC 00 00 00 00 = MOV ESP, 0, and #UD at byte 5 of the slot
    finds no stack (the guest's handlers ran on ROM, IRET to 0xcfef2e06, for ever: the run went silent).
    Op 935936: apicx runs the APR, CFh = IRET, which popped a frame with EFLAGS.VM set: virtual-8086
    mode, triple fault. The guest's stubs now resume the op from a stack of their own, and a fetch pops
    a sane far frame and always ends through the op's recovery point: the run ends as the guest ends it."""
    run = hvtrace_run(
        "run", "--backend", backend, "--cpus", "1", "--memory", "256M", "--timeout", "120",
        "--guest", str(chaos_elf), "--append", f"chaos seed=6 ops={ops} first={first} cpus=1",
    )  # fmt: skip
    done = [m for m in map(DONE_RE.match, run.stdout.splitlines()) if m]
    assert len(done) == 1, run.describe()
    assert (done[0][5], done[0][6]) == ("0", "0"), run.describe()  # nothing unexpected, exit code 0
    if first == 398971:
        assert "#UD=1" in run.stdout, run.describe()  # the #UD on the wrecked stack was taken and counted
    assert run.returncode == 0, run.describe()


FORGED = "HVTRACE STATUS code=0 result=pass reason=ok"
FORGED_RIP = 0x0BADF00D0BADF00D  # chaos.c op_forge: the RIP of the record frame it forges on 0xE9


@pytest.mark.qemu
@pytest.mark.parametrize(
    ("end", "reason", "code"),
    [("exitcode=5", "guest_debug_exit", 5), ("end=triple", "guest_triple_fault", 1)],
)
def test_forged_status_lines_do_not_fool_the_host(
    hvtrace_run: RunFn, chaos_elf: Path, end: str, reason: str, code: int
) -> None:
    """The forge class prints `HVTRACE STATUS code=0 result=pass reason=ok` on COM1 (and a frame on
    0xE9), then the guest ends badly: code 5 through isa-debug-exit, or a triple fault. The host must
    report the hypervisor's real status and exit code, never the forged pass."""
    run = hvtrace_run(
        "run", "--backend", "qemu", "--cpus", "1", "--memory", "256M", "--timeout", "60",
        "--guest", str(chaos_elf), "--append", f"chaos seed=3 ops=200 cpus=1 classes=forge,cpuid,ioch {end}",
    )  # fmt: skip
    assert FORGED in run.stdout.splitlines(), run.describe()  # the forgery happened
    assert run.returncode == code, run.describe()
    hv_lines = [m for m in map(STATUS_RE.match, run.stdout.splitlines()) if m and m[3] != "ok"]
    assert [m[3] for m in hv_lines] == [reason], run.describe()
    reported = re.findall(
        r"^hvtrace: (?:hypervisor status|guest exit) .*reason=(\w+)", run.output, re.MULTILINE
    )
    assert reported == [reason], run.describe()
    assert_clean(run)


@pytest.mark.bochs
def test_forged_frames_on_port_e9_are_not_records_under_bochs(chaos_elf: Path) -> None:
    """Under Bochs the records travel as CRC'd frames on port 0xE9 (trace_e9=1); the guest's writes
    there are intercepted and go to its console: a well-formed forged frame never becomes a record."""
    run = run_chaos("bochs", 1, "chaos seed=3 ops=300 cpus=1 classes=default,forge", chaos_elf, timeout=150)
    assert any(line == FORGED for line in run.console)
    forged = run.recs[run.recs["rip"] == np.uint64(FORGED_RIP)]
    assert len(forged) == 0, f"{len(forged)} forged records accepted from the guest's 0xE9 bytes"
