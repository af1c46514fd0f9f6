"""The conformance guest (boot/guests/conform, issue 12 item 9), bare and under the hypervisor.

The guest runs small architectural checks and prints one ``CONFORM <name>: PASS|FAIL ...|SKIP ...``
line each, then ``CONFORM DONE n=<count>``, and ends the run by writing its code to the isa-debug-exit
port 0xF4 (then the GUEST_EXIT hypercall, then ACPI power-off). Its verdicts are architectural: a
correct hypervisor gives exactly the lines of the bare machine.

* Bare: QEMU ``-kernel`` on the hypervisor's machine model and CPU model (q35,
  :data:`hvtrace.guest_assets.QEMU_CPU`), 1 and 2 CPUs, both builds (linked at 1 MiB and at 32 MiB).
  Every check must PASS there (the SMP checks print ``SKIP cpus=1`` with one CPU): that is what shows
  the checks themselves are right.
* Bare Bochs: the guest alone on a GRUB ISO (the hypervisor's Bochs configuration and CPU model), one
  CPU, every check but those bare Bochs cannot run (:data:`BARE_BOCHS_CANNOT_RUN`, with the reason).
* Differential: ``hvtrace run --guest`` under QEMU/SVM with 1 and 2 CPUs (reference: bare QEMU) and
  under Bochs/VT-x with one (reference: bare Bochs; bare QEMU for the checks bare Bochs cannot run).
  The compared set is explicit (``COMPARED_SVM`` / ``COMPARED_VMX``); every other check is in
  ``PENDING_SVM`` / ``PENDING_VMX`` with the fix it waits for, is left out of the hypervisor run
  (``skip=`` on the guest's command line, so a check that still ends the run cannot hide the others)
  and is named in the test output. As fixes land, move names from PENDING to COMPARED: the goal is an
  empty PENDING. ``python -m tests.integration.test_conformance qemu-1cpu [CHECK...]`` runs each check
  alone under the hypervisor and says which ones now give the bare line.
"""

from __future__ import annotations

import difflib
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hvtrace import guest_assets, paths
from hvtrace.abi import HV_DEBUG_EXIT_PORT
from hvtrace.exitcodes import ExitCode
from hvtrace.launch import BochsSession, RunResult, procs
from hvtrace.launch.qemu import QEMU
from hvtrace.tools import require_tool
from tests.integration.conftest import Run, RunFn, assert_clean

pytestmark = [pytest.mark.slow]

#: The build the hypervisor runs load: conform.elf, linked at 1 MiB like most multiboot kernels (the
#: hypervisor's own image lives at the top of RAM). conform-high.elf is the same guest at 32 MiB.
HV_GUEST = "conform.elf"
BUILDS = ("conform.elf", "conform-high.elf")

LINE_RE = re.compile(r"^CONFORM (?P<name>[a-z0-9_]+): (?P<verdict>PASS|FAIL|SKIP)(?: (?P<detail>.*))?$")
DONE_RE = re.compile(r"^CONFORM DONE n=(?P<n>\d+)$")
SMP_CHECKS = (
    "smp_start", "smp_nmi_ipi", "smp_hlt_wake", "smp_hlt_intr", "smp_hlt_init", "smp_init_sipi",
    "smp_init_timer",
)  # fmt: skip


#: Checks compared under QEMU/SVM with 1 and 2 CPUs: their lines must equal the bare lines.
COMPARED_SVM: tuple[str, ...] = (
    "kernel_load", "mem_upper", "mmap", "exceptions", "apic_id_version", "apic32_mov89", "apic32_disp8",
    "apic32_sib_disp32", "apic32_abs_modrm", "apic32_moffs_store", "apic32_movc7", "apic32_movc7_sib",
    "apic32_mov8b", "apic32_moffs_load", "apic32_byte_word_stores", "apic32_byte_word_loads",
    "apic32_seg_es", "apic32_seg_fs_moffs", "apic32_addr16_fs", "apic32_xchg", "apic32_or",
    "apic32_lock_or", "apic32_lock_and", "apic32_lock_add", "apic32_lock_xadd", "apic32_lock_cmpxchg",
    "apic32_lock_bts", "apic32_lock_btr", "apic32_stos", "apic32_rep_stos", "apic32_rep_movs_store",
    "apic32_movs_load", "apic32_movs_apic_apic", "apic32_svr", "apic32_icr_high", "apic16_mov89",
    "apic16_movc7_sib", "apic16_rep_stos", "apic16_xchg", "apic16_lock_xadd", "apic16_fs_addr16",
    "apic16_lock_or", "apic16_lock_and", "apic16_lock_add", "apic16_lock_cmpxchg", "apic16_lock_bts",
    "apic16_lock_btr", "apic16_rep_movs", "apic16_mov8b", "apic16_fs_disp16", "apic_real_unreal",
    "apic64_mov89", "apic64_rex", "apic64_rex_sib", "apic64_movc7", "apic64_movabs_store",
    "apic64_movabs_load", "apic64_mov8b_rex", "apic64_xchg", "apic64_lock_or", "apic64_lock_xadd",
    "apic64_lock_cmpxchg", "apic64_lock_bts", "apic64_lock_btr", "apic64_rep_stos", "apic64_rep_movs",
    "apic64_addr32", "apic64_gs_base", "apic64_lock_and", "apic64_lock_add", "apic64_stos",
    "apic64_disp32_neg", "apic64_byte_store", "mode_switch", "tf_cpuid", "tf_rdmsr", "tf_wrmsr",
    "tf_mov_cr0", "tf_mov_cr3", "tf_mov_cr4", "tf_cpuid64", "dr7_exec", "dr7_write", "dr7_rw", "dr7_kept",
    "pae_cr3", "df_task_gate", "pf_delivery", "pf_delivery_split", "pf_delivery_int3", "pf_delivery_intn",
    "smp_start", "smp_nmi_ipi", "smp_hlt_wake", "smp_hlt_intr", "smp_hlt_init", "smp_init_sipi",
    "smp_init_timer", "msr_mtrr_readback", "msr_efer_nxe", "smi_cmd", "hlt_sti_pending",
)  # fmt: skip

#: QEMU/SVM: every other check, with the fix it waits for (none left).
PENDING_SVM: dict[str, str] = {}

#: Checks compared under Bochs/VT-x (1 and 2 CPUs): the same set, against bare Bochs (bare QEMU for the
#: checks bare Bochs cannot run). smp_hlt_wake needs the guest's HLT kept across the hypervisor's own
#: NMI kicks, which Bochs 2.7 saves as active: vmx/halt.c keeps it (the HLT activity state).
COMPARED_VMX: tuple[str, ...] = COMPARED_SVM

#: Bochs/VT-x: every other check, with the fix it waits for (none left).
PENDING_VMX: dict[str, str] = PENDING_SVM

#: How a hypervisor run ends. The guest writes its code to port 0xF4, which the hypervisor intercepts
#: (io_policy.c): the run ends with its status line and the guest's code as hvtrace's exit code. Set
#: to a reason only if that intercept is ever missing again.
DEBUG_EXIT_PENDING: str | None = None

#: Checks a bare Bochs run leaves out (``skip=``), with the reason; the Bochs/VT-x differential compares
#: them with the bare QEMU line instead.
BARE_BOCHS_CANNOT_RUN: dict[str, str] = {
    "apic32_byte_word_stores": "Bochs 2.7's local APIC panics on a write that is not 4 bytes "
    "('APIC write with len=1 (should be 4)'): byte and word APIC accesses are model specific "
    "(SDM Vol. 3A 11.4.1)",
    "apic64_byte_store": "the same Bochs 2.7 APIC panic (a 1-byte write)",
}

PLATFORMS = {
    "qemu-1cpu": ("qemu", 1, COMPARED_SVM, PENDING_SVM),
    "qemu-2cpu": ("qemu", 2, COMPARED_SVM, PENDING_SVM),
    "bochs-1cpu": ("bochs", 1, COMPARED_VMX, PENDING_VMX),
    "bochs-2cpu": ("bochs", 2, COMPARED_VMX, PENDING_VMX),
}


# ------------------------------------------------------------------------------------------ helpers
def conform_lines(text: str) -> list[str]:
    """The guest's result lines (CONFORM <name>: ... and CONFORM DONE), in order."""
    out = []
    for raw in text.splitlines():
        line = raw.rstrip("\r")
        if LINE_RE.match(line) or DONE_RE.match(line):
            out.append(line)
    return out


def results_of(lines: list[str]) -> list[str]:
    """The per-check lines (without CONFORM DONE)."""
    return [line for line in lines if LINE_RE.match(line)]


def names(lines: list[str]) -> list[str]:
    """The check names of the per-check lines, in order."""
    return [m.group("name") for line in lines if (m := LINE_RE.match(line))]


def differential(want: list[str], got: list[str], what: str) -> str:
    """'' when equal, else a readable report: the count of differing lines and a unified diff."""
    if want == got:
        return ""
    sm = difflib.SequenceMatcher(a=want, b=got, autojunk=False)
    differing = sum(max(i2 - i1, j2 - j1) for tag, i1, i2, j1, j2 in sm.get_opcodes() if tag != "equal")
    diff = "\n".join(difflib.unified_diff(want, got, "bare", what, n=1, lineterm=""))
    return f"{differing} differing line(s) between bare and {what}:\n{diff}"


def bare_argv(elf: Path, cpus: int, append: str, qemu: str = QEMU, *, serial: bool = True) -> list[str]:
    """QEMU booting the guest directly: the hypervisor's machine and CPU model (hvtrace.launch.qemu),
    the serial port on stdout (or no UART at all), isa-debug-exit at the port the guest writes."""
    console = ["-chardev", "stdio,id=console,signal=off", "-serial", "chardev:console"]
    return [
        qemu,
        "-machine", "q35",
        "-accel", "tcg",
        "-cpu", guest_assets.QEMU_CPU,
        "-smp", str(cpus),
        "-m", "256M",
        "-kernel", str(elf),
        "-append", append,
        "-display", "none",
        "-monitor", "none",
        *(console if serial else ["-serial", "none"]),
        "-no-reboot",
        "-device", f"isa-debug-exit,iobase={HV_DEBUG_EXIT_PORT:#x},iosize=4",
    ]  # fmt: skip


def run_bare(
    elf: Path, cpus: int, append: str, timeout: float = 120, *, serial: bool = True
) -> tuple[int, str]:
    """Boot ``elf`` bare; (QEMU's exit status, console text). QEMU is always stopped."""
    qemu = require_tool(QEMU, "for the bare conformance runs")
    proc = procs.spawn(bare_argv(elf, cpus, append, qemu, serial=serial))
    out = bytearray()
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + timeout
        fd = proc.stdout.fileno()
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([fd], [], [], min(left, 0.5))
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                out += chunk
        rc = proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            procs.signal_group(proc, signal.SIGKILL)
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    return rc, out.decode(errors="replace")


def run_bare_bochs(elf: Path, cpus: int, append: str, timeout: float = 600) -> tuple[RunResult, list[str]]:
    """Boot ``elf`` alone from a GRUB ISO under Bochs (BochsSession with the guest as its image); the
    run's result and console lines. The guest ends it with Bochs' magic breakpoint (the debugger script
    quits: exit status 0, no hypervisor status line)."""
    session = BochsSession(elf=elf, cmdline=append, cpus=cpus, memory_mb=256, timeout=timeout)
    try:
        with session:
            result = session.wait()
            lines = list(session.lines)
    finally:
        if session.result is not None and session.result.kept_dir is not None:
            shutil.rmtree(session.result.kept_dir, ignore_errors=True)
    return result, lines


# ----------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def guests() -> dict[str, Path]:
    """hv/build/guests/conform.elf and conform-high.elf (`make -C hv` builds them with the image)."""
    built = {name: paths.build_dir() / "guests" / name for name in BUILDS}
    r = subprocess.run(
        ["make", "-s", "-C", str(paths.hv_dir()), *(f"build/guests/{n}" for n in BUILDS)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    for elf in built.values():
        assert elf.is_file(), f"make -C hv did not build {elf}"
    return built


_bare_cache: dict[tuple[str, int], tuple[int, str]] = {}


def bare(guests: dict[str, Path], build: str, cpus: int) -> tuple[int, str]:
    """One bare run per build and CPU count (module-wide cache: the differential tests reuse them)."""
    key = (build, cpus)
    if key not in _bare_cache:
        _bare_cache[key] = run_bare(guests[build], cpus, f"conform cpus={cpus}")
    return _bare_cache[key]


_bare_bochs_cache: dict[int, tuple[RunResult, list[str]]] = {}


def bare_bochs(guests: dict[str, Path], cpus: int) -> tuple[RunResult, list[str]]:
    """One bare Bochs run of the hypervisor runs' build per CPU count (module-wide cache)."""
    if cpus not in _bare_bochs_cache:
        append = f"conform cpus={cpus} skip={','.join(BARE_BOCHS_CANNOT_RUN)}"
        _bare_bochs_cache[cpus] = run_bare_bochs(guests[HV_GUEST], cpus, append)
    return _bare_bochs_cache[cpus]


# -------------------------------------------------------------------------------------------- tests
@pytest.mark.qemu
@pytest.mark.parametrize("cpus", [1, 2])
@pytest.mark.parametrize("build", BUILDS)
def test_every_check_passes_bare(guests: dict[str, Path], build: str, cpus: int) -> None:
    rc, text = bare(guests, build, cpus)
    shown = text[-6000:]
    check_all_pass(conform_lines(text), cpus, shown)
    assert rc == (0 << 1) | 1, f"QEMU exit status {rc}: isa-debug-exit gives (code << 1) | 1\n{shown}"


@pytest.mark.qemu
def test_runs_to_its_end_without_a_serial_port(guests: dict[str, Path]) -> None:
    """No UART at 0x3F8 (LSR reads 0xff): the guest neither hangs nor faults, and its isa-debug-exit
    code says every check passed."""
    rc, text = run_bare(guests["conform.elf"], 2, "conform cpus=2", serial=False)
    assert text == ""
    assert rc == (0 << 1) | 1, f"QEMU exit status {rc}: isa-debug-exit gives (code << 1) | 1"


def check_all_pass(lines: list[str], cpus: int, shown: str) -> None:
    """Every check line is PASS (the SMP checks: SKIP cpus=1 with one CPU), each check once, DONE last."""
    results = results_of(lines)
    assert results, f"no CONFORM lines:\n{shown}"
    assert lines[-1] == f"CONFORM DONE n={len(results)}", shown
    assert len(set(names(lines))) == len(results), f"a check reported twice:\n{shown}"
    for line in results:
        m = LINE_RE.match(line)
        assert m is not None
        if cpus == 1 and m.group("name") in SMP_CHECKS:
            assert line == f"CONFORM {m.group('name')}: SKIP cpus=1", shown
        else:
            assert m.group("verdict") == "PASS", f"{line}\n{shown}"
    assert set(SMP_CHECKS) <= set(names(lines))


@pytest.mark.bochs
def test_every_check_passes_bare_under_bochs(guests: dict[str, Path]) -> None:
    result, lines = bare_bochs(guests, 1)
    shown = "\n".join(lines[-80:])
    check_all_pass(conform_lines("\n".join(lines)), 1, shown)
    assert not set(BARE_BOCHS_CANNOT_RUN) & set(names(conform_lines("\n".join(lines))))
    # ended by the guest's magic breakpoint: Bochs quit with status 0, no hypervisor status line
    assert result.returncode == 0, f"{result.message}\n{shown}"
    assert result.status is None


@pytest.mark.qemu
@pytest.mark.parametrize("platform", list(PLATFORMS))
def test_compared_and_pending_lists_cover_every_check(guests: dict[str, Path], platform: str) -> None:
    """Every check the guest has is either compared or pending (with its fix) on each platform."""
    _backend, cpus, compared, pending = PLATFORMS[platform]
    _rc, text = bare(guests, HV_GUEST, cpus)
    every = names(conform_lines(text))
    assert len(compared) == len(set(compared)), "a name twice in the compared list"
    assert not set(compared) & set(pending), f"both compared and pending: {set(compared) & set(pending)}"
    assert all(why.strip() for why in pending.values())
    assert set(compared) | set(pending) == set(every), (
        f"not listed: {sorted(set(every) - set(compared) - set(pending))}; "
        f"not a check: {sorted((set(compared) | set(pending)) - set(every))}"
    )


def check_run_end(run: Run, backend: str) -> None:
    """The run ended through the guest: its debug-exit write (or, until that port is intercepted,
    QEMU's own isa-debug-exit device / the GUEST_EXIT hypercall), never a hypervisor failure."""
    if DEBUG_EXIT_PENDING is None:
        assert run.returncode == 0, run.describe()
        assert "HVTRACE STATUS code=0 result=pass" in run.stdout, run.describe()
    elif backend == "qemu":
        assert run.returncode in (0, int(ExitCode.NO_STATUS)), run.describe()
        if run.returncode == int(ExitCode.NO_STATUS):
            assert "left QEMU through isa-debug-exit (value 0)" in run.stderr, run.describe()
    else:
        assert run.returncode == 0, run.describe()
        assert "guest: CPU 0: GUEST_EXIT hypercall, status 0" in run.stdout, run.describe()


@pytest.mark.parametrize(
    "platform",
    [
        pytest.param("qemu-1cpu", marks=pytest.mark.qemu),
        pytest.param("qemu-2cpu", marks=pytest.mark.qemu),
        pytest.param("bochs-1cpu", marks=[pytest.mark.qemu, pytest.mark.bochs]),
        pytest.param("bochs-2cpu", marks=[pytest.mark.qemu, pytest.mark.bochs]),
    ],
)
def test_differential_bare_vs_hypervisor(hvtrace_run: RunFn, guests: dict[str, Path], platform: str) -> None:
    backend, cpus, compared, pending = PLATFORMS[platform]
    _rc, text = bare(guests, HV_GUEST, cpus)
    bare_lines = conform_lines(text)
    reference = dict(zip(names(bare_lines), results_of(bare_lines), strict=True))
    if backend == "bochs":  # the same CPU model bare, for the checks bare Bochs can run
        _result, bochs_lines = bare_bochs(guests, cpus)
        own = conform_lines("\n".join(bochs_lines))
        reference.update(zip(names(own), results_of(own), strict=True))
    want = [line for name, line in reference.items() if name in compared]
    assert len(want) == len(compared), f"bare run lacks compared checks:\n{text[-4000:]}"
    skip = ",".join(name for name in names(bare_lines) if name in pending)
    append = f"conform cpus={cpus}" + (f" skip={skip}" if skip else "")
    run = hvtrace_run(
        "run", "--backend", backend, "--cpus", str(cpus), "--memory", "256M",
        "--guest", str(guests[HV_GUEST]), "--append", append,
        timeout=600,
    )  # fmt: skip
    got_all = conform_lines(run.stdout)
    got = results_of(got_all)
    pending_note = "\n".join(f"  pending {name}: {why}" for name, why in sorted(pending.items()))
    print(f"{platform}: {len(compared)} checks compared, {len(pending)} pending:\n{pending_note}")
    report = differential(want, got, f"hypervisor ({platform})")
    assert not report, f"{report}\n--- hypervisor run\n{run.describe()}"
    assert got_all[-1:] == [f"CONFORM DONE n={len(compared)}"], run.describe()
    check_run_end(run, backend)
    assert_clean(run)


# ------------------------------------------------------------------------------------------- survey
def survey(platform: str, only: list[str] | None = None) -> list[str]:
    """Each check alone (``only=<name>``) under the hypervisor on ``platform``: one report line per check
    with its bare line, its hypervisor line (or how the run ended without one) and whether it is compared
    today. For moving names from PENDING to COMPARED as fixes land; not a test."""
    backend, cpus, compared, _pending = PLATFORMS[platform]
    elf = paths.build_dir() / "guests" / HV_GUEST
    _rc, text = run_bare(elf, cpus, f"conform cpus={cpus}")
    bare_lines = dict(zip(names(conform_lines(text)), results_of(conform_lines(text)), strict=True))
    report = []
    for name in only or list(bare_lines):
        argv = [
            "run", "--backend", backend, "--cpus", str(cpus), "--memory", "256M",
            "--guest", str(elf), "--append", f"conform cpus={cpus} only={name}",
        ]  # fmt: skip
        proc = subprocess.run(
            [sys.executable, "-m", "hvtrace", *argv], capture_output=True, text=True, check=False, timeout=900
        )
        kept = re.search(r"^hvtrace: kept (\S+) for post-mortem", proc.stderr, re.MULTILINE)
        if kept:
            shutil.rmtree(kept.group(1), ignore_errors=True)
        mine = [line for line in conform_lines(proc.stdout) if line.startswith(f"CONFORM {name}:")]
        ended = re.findall(
            r"^(?:HVTRACE STATUS .*|.*cannot decode.*|.*without a handler.*)$", proc.stdout, re.M
        )
        same = "same" if mine and mine[0] == bare_lines.get(name) else "DIFFERS"
        where = "compared" if name in compared else "pending"
        hv = mine[0] if mine else "<no line> " + " | ".join(ended[:2])
        report.append(f"{name}: {same} ({where}); bare: {bare_lines.get(name)}; hypervisor: {hv}")
    return report


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in PLATFORMS:
        sys.exit(f"usage: python -m tests.integration.test_conformance {{{','.join(PLATFORMS)}}} [CHECK...]")
    print("\n".join(survey(sys.argv[1], sys.argv[2:] or None)))
