"""Exit breakpoints from the TUI on live QEMU sessions (SVM under TCG, CPUID storm): the real gdb over
MI (pygdbmi) on the session's gdbstub, the hypervisor's break table, the Textual pilot.

A break on CPUID pauses the VM and shows the decoded exit, the guest registers and instruction and the
VMCB; step stops at the next exit of that CPU; clear resumes and the counts grow again. The same on a
session the TUI attaches to by its RAM file (`hvtrace tui --ram`), whose gdbstub is found from /proc.
The same flow on Bochs, through the hypervisor's resident gdb stub: test_tui_breaks_bochs.py.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest

from hvtrace.launch.qemu import QemuSession
from hvtrace.trace.capture import Capture
from hvtrace.tui.app import HvTraceApp
from hvtrace.tui.break_screen import BreakHitScreen
from hvtrace.tui.reason_table import ReasonTable
from hvtrace.tui.sources import LiveSource
from hvtrace.tui.widgets import CpuPanel, StatusBar
from tests.integration.conftest import wait_for
from tests.integration.test_gdb_break_conditions import table_in_ram
from tests.integration.test_tui_qemu import SIZE, table_rows, until

pytestmark = [pytest.mark.slow]


def select_reason(app: HvTraceApp, name: str) -> None:
    table = app.query_one(ReasonTable)
    for row in range(table.row_count):
        if str(table.get_row_at(row)[0]) == name:
            table.move_cursor(row=row)
            return
    raise AssertionError(f"no {name} row")


def notified(app: HvTraceApp, text: str) -> bool:
    """Has the app shown a notification containing ``text``?"""
    return any(text in str(n.message) for n in app._notifications)


def gdb_children() -> list[int]:
    """gdb processes started by this test process (the TUI's MI gdb)."""
    me = str(os.getpid())
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().split(") ")
        except OSError:
            continue
        if fields[0].endswith("(gdb") and fields[1].split()[1] == me:
            out.append(int(stat.parent.name))
    return out


async def step_on(app: HvTraceApp, pilot: Any, cpu: int, timeout: float, what: str) -> None:
    """Press `s` at a hit: a new step hit comes, on ``cpu``, and only the user's break stays armed."""
    before = app.break_hit

    def stepped() -> bool:
        # a new hit: the previous step's stays shown until the VM runs again
        return app.break_hit is not None and app.break_hit is not before and app.break_hit.step

    await pilot.press("s")
    await until(pilot, stepped, timeout, what)
    assert app.break_hit is not None
    assert app.break_hit.cpu == cpu, (what, app.break_hit)
    assert isinstance(app.screen, BreakHitScreen)
    assert len(app.break_entries) == 1


async def hit_on_cpuid_then_step_then_clear(app: HvTraceApp, pilot: Any, cpu: int) -> None:
    await until(pilot, lambda: "CPUID" in table_rows(app), 60, "the CPUID row")
    # scope the table to one CPU: the break is then CPU-bound (hv-break ... --cpu N)
    while app.query_one(CpuPanel).selected != cpu:
        await pilot.press("c")
    select_reason(app, "CPUID")
    await pilot.press("b")
    await until(pilot, lambda: isinstance(app.screen, BreakHitScreen), 60, "the break hit screen")
    hit = app.break_hit
    assert hit is not None
    assert (hit.cpu, hit.reason, hit.step) == (cpu, "CPUID", False)
    screen_text = "\n".join(hit.text)
    assert re.search(
        rf"CPU{cpu} (#\d+ )?CPUID\(0x72\)/CPUID rip=0x[0-9a-f]+ leaf 0x[0-9a-f]+ subleaf", screen_text
    )
    assert re.search(r"RAX 0x[0-9a-f]{16}", screen_text)  # guest registers
    assert re.search(r"0x[0-9a-f]+: 0f a2 +cpuid", screen_text)  # the guest instruction (capstone)
    vmcb = "\n".join(hit.vmcs)
    assert f"CPU {cpu} VMCB snapshot: why=BREAK" in vmcb
    assert re.search(r"EXITCODE\s+\+070\s+0x0+72", vmcb), vmcb[:2000]
    assert "VM PAUSED at break" in str(app.query_one(StatusBar).render())
    # paused: nothing new arrives (records already in the rings drain first)
    await pilot.pause(1.0)
    held = app.stats.records
    await pilot.pause(1.5)
    assert app.stats.records == held
    # step: the next exit of the same CPU
    await pilot.press("s")
    await until(pilot, lambda: app.break_hit is not None and app.break_hit.step, 30, "the step hit")
    assert isinstance(app.screen, BreakHitScreen)
    assert app.break_hit is not None
    assert app.break_hit.cpu == cpu
    # clear: the break is deleted, the VM runs and counts grow again
    await pilot.press("x")
    await until(pilot, lambda: app.break_hit is None and not app.break_entries, 30, "the cleared break")
    assert not isinstance(app.screen, BreakHitScreen)
    await until(pilot, lambda: app.break_state == "running", 30, "the VM running again")
    before = app.stats.records
    await until(pilot, lambda: app.stats.records > before + 1000, 30, "counts growing after resume")
    assert app.break_hit is None


@pytest.mark.qemu
def test_break_on_cpuid_pauses_shows_the_exit_steps_and_resumes() -> None:
    src = LiveSource.start(backend="qemu", cpus=2, memory_mb=64, cmdline="storm=1")

    async def scenario() -> None:
        app = HvTraceApp(src, log_capacity=100_000)
        async with app.run_test(size=SIZE) as pilot:
            await hit_on_cpuid_then_step_then_clear(app, pilot, cpu=1)
            # a filter the hypervisor cannot take is refused with hv-break's own message, nothing armed
            app.break_on("cpuid --bogus 1")
            await until(pilot, lambda: notified(app, "unknown option"), 30, "the refusal")
            assert not app.break_entries
            assert gdb_children()  # the TUI's gdb runs until the app ends
        assert not gdb_children()  # ...and is gone with it

    try:
        asyncio.run(scenario())
    finally:
        src.close()


@pytest.mark.qemu
def test_steps_stay_on_the_hit_cpu_never_accumulate_and_x_clears_everything() -> None:
    """A break on any CPU, hit on CPU c: every step stops on CPU c (the other CPU keeps hitting the same
    break meanwhile), no step leaves an entry behind in the hypervisor's table, one x clears it all."""
    src = LiveSource.start(backend="qemu", cpus=2, memory_mb=64, cmdline="storm=1")

    def armed_in_ram() -> int:
        cap = src.capture
        assert cap is not None
        return int(table_in_ram(cap.session.ram_path if cap.session is not None else None).armed)

    async def scenario() -> None:
        app = HvTraceApp(src, log_capacity=100_000)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: "CPUID" in table_rows(app), 60, "the CPUID row")
            assert app.query_one(CpuPanel).selected is None  # all CPUs: the break is not CPU-bound
            select_reason(app, "CPUID")
            await pilot.press("b")
            await until(pilot, lambda: isinstance(app.screen, BreakHitScreen), 60, "the break hit screen")
            assert app.break_hit is not None
            cpu = app.break_hit.cpu
            for n in range(3):
                await step_on(app, pilot, cpu, 30, f"step {n}")
                assert armed_in_ram() == 1  # the user's break; the step's entry went with its hit
            await pilot.press("x")
            await until(pilot, lambda: app.break_state == "running", 30, "the VM running again")
            assert not app.break_entries
            assert armed_in_ram() == 0

    try:
        asyncio.run(scenario())
    finally:
        src.close()


@pytest.mark.qemu
def test_attached_tui_counts_and_breaks_through_the_sessions_gdbstub() -> None:
    session = QemuSession(cpus=1, memory_mb=64, cmdline="storm=1", timeout=600)
    try:
        session.start()
        # attach once the hypervisor runs the storm (before, its rings do not exist yet)
        wait_for(lambda: any("storm:" in line for line in session.lines), 60, "the storm")
        ram = session.ram_path
        assert ram is not None
        src = LiveSource.attach(ram)

        async def scenario() -> None:
            app = HvTraceApp(src, log_capacity=100_000)
            async with app.run_test(size=SIZE) as pilot:
                await until(pilot, lambda: app.stats.records > 1000, 60, "records from the attached session")
                status = str(app.query_one(StatusBar).render())
                assert "backend qemu (attached)" in status  # connected, and says it did not start the VM
                assert "live" in status
                await hit_on_cpuid_then_step_then_clear(app, pilot, cpu=0)

        try:
            asyncio.run(scenario())
        finally:
            src.close()
        # the TUI neither stopped nor left paused the session it attached to: its exits go on
        assert session.proc is not None
        assert session.proc.poll() is None
        with Capture.attach(ram=ram) as cap:
            got = 0
            deadline = time.monotonic() + 30
            while got < 1000 and time.monotonic() < deadline:
                got += len(cap.poll())
                time.sleep(0.05)
        assert got >= 1000
    finally:
        session.close()
