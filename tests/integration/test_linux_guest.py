"""Debian's Linux kernel with the busybox initramfs as the hypervisor's guest.

Under QEMU TCG (AMD SVM back end) with 2 CPUs: the guest starts its AP itself (INIT-SIPI-SIPI through
the trapped xAPIC ICR, emulated by the hypervisor), /init reports ``nproc=2``, the power-off ends the
run with ``reason=guest_poweroff``; both CPUs run under the hypervisor (each has exits). A live capture
of the boot is reported by reason, and the TUI shows it live. The assets come from Debian's packages
at set-up time (the ``linux`` fixture in conftest.py: missing assets fail the run in CI).

Under Bochs (Intel VT-x back end) the same boot takes minutes of emulation: 1 CPU runs in CI, 2 CPUs
(the guest's AP start-up through the VT-x path) is marked ``slowest`` and runs with ``-m slowest``.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from hvtrace import guest_assets as ga
from hvtrace.abi import HvExitKind
from hvtrace.launch.guest import GuestSpec
from hvtrace.launch.qemu import QemuSession
from hvtrace.trace.capture import Capture
from hvtrace.trace.code import PagedCode
from hvtrace.trace.report import build_report
from hvtrace.trace.tracefile import TraceFile
from hvtrace.tui.app import HvTraceApp
from hvtrace.tui.sources import LiveSource
from hvtrace.tui.widgets import StatusBar
from tests.integration.conftest import Linux, RunFn, assert_clean, gdb_on
from tests.integration.test_guest_mbtest_smp import park_looks
from tests.integration.test_tui_qemu import SIZE, table_rows, until

pytestmark = [pytest.mark.slow]

#: A 115200-baud console (9600 would dominate an emulated boot) and no crypto self-tests; not quiet:
#: the e820 map Linux prints is checked.
LINUX_ARGS = "console=ttyS0,115200 panic=-1 cryptomgr.notests=1"
SIPI_RE = re.compile(r"guest: CPU 0 sent SIPI vector 0x[0-9a-f]+ to CPU 1: it starts in real mode")
POWEROFF_RE = re.compile(r"guest: CPU \d powers the machine off \(ACPI PM1a_CNT 0x[0-9a-f]+ <- 0x[0-9a-f]+")
HV_RANGE_RE = re.compile(r"guest: hypervisor memory \[(0x[0-9a-f]+)-(0x[0-9a-f]+)\) removed")
E820_RE = re.compile(r"BIOS-e820: \[mem (0x[0-9a-f]+)-(0x[0-9a-f]+)\] (\w+)")
EXITS_RE = re.compile(r"^(svm|vmx): CPU (\d+) exits:(.*)$", re.MULTILINE)


def exit_counts(console: str) -> dict[int, dict[str, int]]:
    """The hypervisor's final per-CPU exit counts ("svm: CPU n exits: NAME=N ...")."""
    out: dict[int, dict[str, int]] = {}
    for _, cpu, rest in EXITS_RE.findall(console):
        out[int(cpu)] = {k: int(v) for k, v in (w.split("=") for w in rest.split())}
    return out


@pytest.mark.qemu
def test_linux_boots_with_two_cpus_under_svm(hvtrace_run: RunFn, linux: Linux) -> None:
    assets, initrd = linux
    run = hvtrace_run(
        "run", "--backend", "qemu", "--cpus", "2", "--memory", "512M", "--timeout", "180",
        "--guest", str(assets.kernel), "--initrd", str(initrd), "--append", LINUX_ARGS,
        timeout=240,
    )  # fmt: skip
    assert run.returncode == 0, run.describe()
    marker = next((m for line in run.stdout.splitlines() if (m := ga.parse_marker(line))), None)
    assert marker is not None, run.stdout[-3000:]
    assert (marker.nproc, marker.cpus_online) == (2, "0-1")
    # The AP was started by the guest through the emulated INIT-SIPI, not by a real INIT.
    assert "guest: CPU 0 sent INIT to CPU 1 (APIC 1): waiting for SIPI" in run.stdout
    assert re.search(
        r"guest: CPU 0 sent SIPI vector 0x[0-9a-f]+ to CPU 1: it starts in real mode", run.stdout
    )
    # every CPU has the BSP's MTRRs, as firmware leaves them (Linux compares them across CPUs)
    assert "inconsistent" not in run.stdout, [ln for ln in run.stdout.splitlines() if "mtrr" in ln]
    # Both CPUs ran Linux under the hypervisor: each has CPUID and xAPIC-store (#NPF) exits.
    counts = exit_counts(run.stdout)
    assert set(counts) == {0, 1}, run.stdout[-2000:]
    for cpu in (0, 1):
        assert counts[cpu].get("CPUID", 0) > 10, counts
        assert counts[cpu].get("NPF", 0) > 10, counts
    # issue 18 item 3: until Linux started it, the AP slept in HLT (one look, one per wake-up), not a spin
    assert park_looks(run.stdout.splitlines(), 1) <= 4, run.stdout[-2000:]
    assert re.search(
        r"guest: CPU \d powers the machine off \(ACPI PM1a_CNT 0x[0-9a-f]+ <- 0x[0-9a-f]+", run.stdout
    )
    assert "result=pass reason=guest_poweroff" in run.stdout
    # Every range the hypervisor removed from the NPT lies in a range Linux's e820 map calls reserved.
    hv = [(int(a, 16), int(b, 16)) for a, b in HV_RANGE_RE.findall(run.stdout)]
    e820 = [(int(a, 16), int(b, 16) + 1, t) for a, b, t in E820_RE.findall(run.stdout)]
    assert hv, run.stdout[:3000]
    for lo, hi in hv:
        assert any(a <= lo and hi <= b and t == "reserved" for a, b, t in e820), (hex(lo), hex(hi), e820)
    assert_clean(run)


@pytest.mark.qemu
def test_capture_of_a_linux_boot_reports_by_reason(linux: Linux, tmp_path: Path) -> None:
    assets, initrd = linux
    spec = GuestSpec(assets.kernel, initrd, LINUX_ARGS)
    trace = tmp_path / "linux.hvt"
    with Capture.start(
        backend="qemu", cpus=2, memory_mb=512, guest=spec, timeout=180, boot_timeout=60
    ) as cap:
        summary = cap.record(trace)  # until the guest powers the machine off
        console = "\n".join(cap.console)
    assert "reason=guest_poweroff" in console
    assert summary["lost_total"] == 0, summary
    tf = TraceFile.open(trace)
    rep = build_report(tf)
    by_name = {r["reason_name"]: r for r in rep["by_reason"]}
    assert {"CPUID", "MSR", "NPF", "IOIO"} <= set(by_name), sorted(by_name)
    assert {r["cpu"] for r in rep["by_cpu"]} == {0, 1}
    assert tf.meta["guest"] == assets.kernel.name
    recs = tf.records()
    # the xAPIC ICR stores that started CPU 1 are in the trace: stage-2 faults at 0xfee00300
    assert int(((recs["gpa"] == 0xFEE00300) & (recs["cpu"] == 0)).sum()) >= 2
    # the last I/O exit is the ACPI power-off: SLP_EN (bit 13) in the value written
    io = recs[recs["kind"] == HvExitKind.IO]
    assert len(io) > 0
    assert int(io["arg1"][-1]) & (1 << 13)


@pytest.mark.qemu
def test_tui_follows_a_linux_boot_live(linux: Linux) -> None:
    assets, initrd = linux
    src = LiveSource.start(
        backend="qemu", cpus=2, memory_mb=512, guest=GuestSpec(assets.kernel, initrd, LINUX_ARGS), timeout=180
    )

    async def scenario() -> None:
        app = HvTraceApp(src, log_capacity=200_000)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.stats.records > 100, 90, "the first records of the boot")
            await until(pilot, lambda: app.stats.total(1) > 0, 90, "exits on CPU 1 (the guest started it)")
            rows = table_rows(app)
            # Linux's RIPs are its own virtual addresses: no instruction bytes are read as physical
            assert src.capture is not None
            assert isinstance(src.capture.code_reader(), PagedCode)  # through the records' CR3
            assert "CPUID" in rows, rows
            assert "NPF" in rows, rows
            await until(pilot, lambda: "exited" in src.state(), 120, "the end of the session")
            # the guest itself ended it: the hypervisor saw its ACPI power-off (no crash, no timeout)
            assert any(POWEROFF_RE.search(line) for line in src.capture.hv_console), src.state()
            await pilot.pause(0.3)
            assert src.state() in str(app.query_one(StatusBar).render())  # and the status line says so
            assert app.is_running

    try:
        asyncio.run(scenario())
    finally:
        src.close()


def check_bochs_linux(run_stdout: str, cpus: int) -> None:
    marker = next((m for line in run_stdout.splitlines() if (m := ga.parse_marker(line))), None)
    assert marker is not None, run_stdout[-3000:]
    assert (marker.nproc, marker.cpus_online) == (cpus, "0" if cpus == 1 else f"0-{cpus - 1}")
    counts = exit_counts(run_stdout)
    assert set(counts) == set(range(cpus)), run_stdout[-2000:]
    for cpu in range(cpus):
        # CPUID, the guest's CR3 loads (CR3-load exiting) and its xAPIC stores (EPT violations)
        assert counts[cpu].get("CPUID", 0) > 10, counts
        assert counts[cpu].get("CR_ACCESS", 0) > 10, counts
        assert counts[cpu].get("EPT_VIOLATION", 0) > 10, counts
    assert POWEROFF_RE.search(run_stdout)
    assert "result=pass reason=guest_poweroff" in run_stdout


BOCHS_LINUX_S_PER_CPU = 600  # the run's own --timeout per emulated CPU


def bochs_linux_test_s(cpus: int) -> int:
    """The test's own pytest timeout: the run's, its 60 s of grace, then the assets and the checks."""
    return BOCHS_LINUX_S_PER_CPU * cpus + 60 + 240


def bochs_linux_run(hvtrace_run: RunFn, linux: Linux, cpus: int) -> str:
    assets, initrd = linux
    limit = BOCHS_LINUX_S_PER_CPU * cpus
    run = hvtrace_run(
        "run", "--backend", "bochs", "--cpus", str(cpus), "--memory", "512M", "--timeout", str(limit),
        "--guest", str(assets.kernel), "--initrd", str(initrd), "--append", LINUX_ARGS + " quiet",
        timeout=limit + 60,
    )  # fmt: skip
    assert run.returncode == 0, run.describe()
    assert_clean(run)
    return run.stdout


@pytest.mark.bochs
@pytest.mark.timeout(bochs_linux_test_s(1))  # ~2.5 min alone; a loaded 2-core host took over 300 s
def test_linux_boots_under_vmx_in_bochs(hvtrace_run: RunFn, linux: Linux) -> None:
    check_bochs_linux(bochs_linux_run(hvtrace_run, linux, 1), 1)


@pytest.mark.bochs
@pytest.mark.slowest
@pytest.mark.timeout(bochs_linux_test_s(2))  # ~6 min alone: the global 300 s would end it
def test_linux_boots_with_two_cpus_under_vmx_in_bochs(hvtrace_run: RunFn, linux: Linux) -> None:
    out = bochs_linux_run(hvtrace_run, linux, 2)
    check_bochs_linux(out, 2)
    assert SIPI_RE.search(out)


@pytest.mark.qemu
def test_an_exit_break_in_linux_disassembles_through_its_page_tables(linux: Linux) -> None:
    """hv-break on a CPUID of the running guest: the hit shows the instruction at the exit's virtual RIP,
    read through the guest's own page tables (CR3 from the snapshot taken at the hit). /init keeps
    starting processes (each one's libc runs CPUID), so the guest cannot finish before gdb is there."""
    assets, initrd = linux
    args = f'{LINUX_ARGS} quiet {ga.CMD_VAR}="while true; do nproc; sleep 1; done"'
    session = QemuSession(cpus=1, memory_mb=512, guest=GuestSpec(assets.kernel, initrd, args), timeout=300)
    with gdb_on(session, "enters the guest") as gdb:
        gdb.ok("hv-break cpuid")
        stop = gdb.continue_until_stop(timeout=120)
        m = re.search(r"CPUID\(0x72\)/CPUID rip=(0x[0-9a-f]+)", stop.text)
        assert m is not None, stop.text
        rip = int(m.group(1), 16)
        assert rip >= 0xFFFF_8000_0000_0000 or rip < 0x8000_0000_0000, hex(rip)  # a canonical virtual address
        assert re.search(rf"^\s+{m.group(1)}: 0f a2 +cpuid$", stop.text, re.MULTILINE), stop.text
        assert "cannot disassemble" not in stop.text
        gdb.ok("hv-break delete all")
