"""The TUI log's instruction column on real QEMU (SVM under TCG): live, read from the shared guest RAM at
each exit's RIP, and in a replay, from the code map the capture stored in the trace file."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hvtrace.abi import HvExitKind
from hvtrace.trace.capture import Capture
from hvtrace.trace.records import Records
from hvtrace.trace.tracefile import TraceFile
from hvtrace.tui.app import HvTraceApp
from hvtrace.tui.fmt import HEADER, INSN_WIDTH
from hvtrace.tui.sources import LiveSource, ReplaySource
from hvtrace.tui.widgets import LogView
from tests.integration.test_tui_qemu import log_lines, pid_alive, until

pytestmark = [pytest.mark.slow, pytest.mark.qemu]

SIZE = (200, 48)
COL = HEADER.index("instruction")
REASON = slice(HEADER.index("reason"), HEADER.index("reason") + 18)
CPUID = bytes.fromhex("0fa2")  # Intel SDM vol. 2A, CPUID: 0F A2
# the instruction each kind of exit comes from, on the SVM back end (the self-test guest and the storm)
EXPECTED: dict[int, Callable[[str], bool]] = {
    HvExitKind.CPUID: lambda t: t == "cpuid",
    HvExitKind.MSR_READ: lambda t: t == "rdmsr",
    HvExitKind.MSR_WRITE: lambda t: t == "wrmsr",
    HvExitKind.VMCALL: lambda t: t == "vmmcall",
    HvExitKind.CR_ACCESS: lambda t: t.startswith("mov cr"),
}


def insn(line: str) -> str:
    return line[COL : COL + INSN_WIDTH].strip()


def check_shown_cpuid_rows(app: Any) -> None:
    """The visible log rows of CPUID exits show the instruction ``cpuid``."""
    rows = [ln for ln in log_lines(app) if ln[REASON].strip() == "CPUID"]
    assert rows, "\n".join(log_lines(app))
    assert all(insn(ln) == "cpuid" for ln in rows), "\n".join(rows)


def check_every_exit_site(app: Any, recs: Records) -> None:
    """One row per distinct (kind, RIP): the instruction matches the kind, none unknown or mismatched."""
    sites: dict[tuple[int, int], int] = {}
    for i, (kind, rip) in enumerate(zip(recs["kind"].tolist(), recs["rip"].tolist(), strict=True)):
        sites.setdefault((kind, rip), i)
    assert (int(HvExitKind.CPUID), int(recs["rip"][-1])) in sites
    for (kind, rip), i in sites.items():
        text = insn(app._format(recs[i]))
        where = f"{HvExitKind(kind).name} at {rip:#x}: {text!r}"
        assert text, where
        assert "?" not in text, where  # the bytes are known
        assert "!=" not in text, where  # and decode to the recorded length
        if kind in EXPECTED:
            assert EXPECTED[kind](text), where


def test_live_storm_log_shows_the_guest_instruction() -> None:
    src = LiveSource.start(backend="qemu", cpus=1, memory_mb=64, cmdline="storm=1")
    pid: int | None = None

    async def scenario() -> None:
        nonlocal pid
        app = HvTraceApp(src, log_capacity=200_000)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.stats.records > 1000, 60, "the first records")
            pid = src.session_pid
            await pilot.pause(0.3)
            assert "instruction" in str(app.query_one(LogView).border_title)
            check_shown_cpuid_rows(app)
            check_every_exit_site(app, app.recent.rows(0, len(app.recent)))
            assert 0 < len(app.code) < 100  # cached per RIP: the storm exits at a handful of RIPs

    try:
        asyncio.run(scenario())
    finally:
        src.close()
    assert pid is not None
    deadline = time.monotonic() + 10
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not pid_alive(pid)


def test_replay_of_a_capture_shows_the_guest_instruction(tmp_path: Path) -> None:
    path = tmp_path / "storm.hvt"
    with Capture.start(backend="qemu", cpus=1, memory_mb=64, cmdline="storm=1 ring=262144") as cap:
        cap.record(path, count=20000)
    tf = TraceFile.open(path)
    recs = tf.records(ordered=True)
    storm_rip = int(recs["rip"][-1])
    assert tf.code[storm_rip] == CPUID
    assert set(np.unique(recs["rip"]).tolist()) <= set(tf.code)  # every RIP of the file has its bytes
    src = ReplaySource(path)

    async def scenario() -> None:
        app = HvTraceApp(src)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.stats.records > 0, 10, "replayed records")
            await pilot.press(*["plus"] * 12)
            await until(pilot, lambda: app.stats.records == len(recs), 60, "the end of the file")
            await pilot.pause(0.3)
            check_shown_cpuid_rows(app)
            check_every_exit_site(app, recs)

    try:
        asyncio.run(scenario())
    finally:
        src.close()
