"""Exit breakpoints from the TUI on Bochs (VT-x) through the hypervisor's resident gdb stub (issue 17):
a Bochs session the TUI starts has the stub (gdbstub=1, COM3 behind hvtrace's relay), and `b` on
CPUID pauses the VM and shows the decoded exit and the VMCS snapshot, `s` stops at the next exit of
the same CPU, `x` deletes every break and the counts grow again. And `hvtrace capture --gdb` prints
its gdb port, where `hvtrace gdb --port` attaches while the capture runs and lists every CPU as a
thread (Bochs: the resident stub; QEMU: its own gdbstub and, with --gdb-stub hv, the resident one).
"""

from __future__ import annotations

import asyncio
import os
import re
import select
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from hvtrace.tui.app import HvTraceApp
from hvtrace.tui.break_screen import BreakHitScreen
from hvtrace.tui.sources import LiveSource
from hvtrace.tui.widgets import StatusBar
from tests.integration.conftest import Live, hvtrace_argv
from tests.integration.test_tui_breaks import gdb_children, select_reason, step_on
from tests.integration.test_tui_qemu import SIZE, table_rows, until

# Every gdb packet crosses the emulated 115200-baud UART of a Bochs that shares a loaded host.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


@pytest.mark.bochs
def test_bochs_break_on_cpuid_steps_on_the_cpu_and_x_clears() -> None:
    src = LiveSource.start(backend="bochs", cpus=1, memory_mb=32, cmdline="storm=1")

    async def scenario() -> None:
        app = HvTraceApp(src, log_capacity=100_000)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: "CPUID" in table_rows(app), 600, "the CPUID row from 0xE9 frames")
            assert src.capture is not None
            port = src.capture.gdb_port  # the resident stub's, behind the relay: shown, as run prints it
            assert port
            assert f"live, gdb port {port}" in str(app.query_one(StatusBar).render())
            select_reason(app, "CPUID")
            await pilot.press("b")
            await until(pilot, lambda: isinstance(app.screen, BreakHitScreen), 900, "the break hit screen")
            hit = app.break_hit
            assert hit is not None
            assert (hit.cpu, hit.reason, hit.step) == (0, "CPUID", False)
            text = "\n".join(hit.text)
            assert re.search(r"CPU0 (#\d+ )?CPUID\(0xa\)/CPUID rip=0x[0-9a-f]+ leaf 0x[0-9a-f]+", text), text
            assert re.search(r"RAX 0x[0-9a-f]{16}", text), text  # guest registers
            assert re.search(r"0x[0-9a-f]+: 0f a2 +cpuid", text), text  # the guest instruction
            vmcs = "\n".join(hit.vmcs)
            assert "CPU 0 VMCS snapshot: why=BREAK" in vmcs, vmcs[:2000]
            reason = re.search(r"VM_EXIT_REASON\s+\S+\s+(0x[0-9a-f]+)", vmcs)
            assert reason is not None, vmcs[:2000]
            assert int(reason.group(1), 16) & 0xFFFF == 10  # CPUID (SDM Vol. 3D, Appendix C)
            assert "VM PAUSED at break" in str(app.query_one(StatusBar).render())
            for n in range(2):  # the step's entry goes with its hit: only the user's break stays
                await step_on(app, pilot, 0, 900, f"step {n}")
            await pilot.press("x")
            await until(pilot, lambda: app.break_state == "running", 600, "the VM running again")
            assert not app.break_entries
            assert not isinstance(app.screen, BreakHitScreen)
            # nothing armed any more: the storm's CPUIDs flow (an entry left behind would stop the VM)
            before = app.stats.records
            await until(pilot, lambda: app.stats.records > before + 200, 600, "counts growing after x")
            assert app.break_hit is None
            assert gdb_children()  # the TUI's gdb runs until the app ends

    try:
        asyncio.run(scenario())
    finally:
        src.close()


def records_arrive(live: Live, timeout: float) -> None:
    """Wait for a progress line (stderr, one a line into a pipe) counting records."""
    assert live.proc.stderr is not None
    fd, seen, deadline = live.proc.stderr.fileno(), b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        if select.select([fd], [], [], 0.5)[0]:
            chunk = os.read(fd, 65536)
            assert chunk, f"capture ended: {seen.decode(errors='replace')}"
            seen += chunk
            if re.search(rb"capture: [1-9][0-9,]* records", seen):
                return
    raise AssertionError(f"no records within {timeout} s: {seen.decode(errors='replace')}")


@pytest.mark.parametrize(
    "backend_args",
    [
        pytest.param(("--backend", "bochs"), marks=pytest.mark.bochs, id="bochs"),
        pytest.param(("--backend", "qemu", "--gdb-stub", "hv"), marks=pytest.mark.qemu, id="qemu-hv"),
    ],
)
def test_capture_gdb_prints_the_port_where_gdb_lists_every_cpu(
    backend_args: tuple[str, ...], hvtrace_live: Callable[..., Live], tmp_path: Path
) -> None:
    out = tmp_path / "t.hvt"
    cap = hvtrace_live(
        "capture", *backend_args, "--gdb", "--cpus", "2", "--memory", "64M", "--append", "storm=1",
        "-o", str(out),
    )  # fmt: skip
    line = cap.read_until(r"gdb port \d+ \(the hypervisor's gdb stub", 300)
    m = re.search(r"gdb port (\d+) .*target remote 127\.0\.0\.1:(\d+)", line)
    assert m is not None, line
    assert m.group(1) == m.group(2)
    records_arrive(cap, 900)  # the hypervisor runs the storm on both CPUs: the stub is up
    gdb = subprocess.run(
        hvtrace_argv(
            "gdb", "--port", m.group(1), "-iex", "set remotetimeout 120", "-batch", "-ex", "info threads"
        ),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert gdb.returncode == 0, gdb.stdout + gdb.stderr
    assert re.search(r"^\*? +1 +Thread 1 ", gdb.stdout, re.MULTILINE), gdb.stdout
    assert re.search(r"^\*? +2 +Thread 2 ", gdb.stdout, re.MULTILINE), gdb.stdout
    assert "Thread 3" not in gdb.stdout
    # gdb left (batch mode detaches): the capture goes on and still ends as asked
    assert cap.proc.poll() is None
    cap.proc.send_signal(2)
    cap.proc.wait(120)
    assert cap.read_until(r"hvtrace: wrote \d+ records", 30)
