"""TUI replay: `j` (jump to the next exit of a reason) puts the log on the exit it jumped to."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np

from hvtrace.abi import HvExitKind
from hvtrace.trace.records import RECORD_DTYPE
from hvtrace.trace.tracefile import TraceWriter
from hvtrace.tui.app import HvTraceApp
from hvtrace.tui.sources import ReplaySource
from hvtrace.tui.widgets import LogView

CPUID, HLT = 10, 12  # VMX basic exit reasons (SDM Vol. 3C Appendix C)
HLT_AT = (6000, 9000)


def write_trace(path: Path) -> None:
    n = 10000
    recs = np.zeros(n, RECORD_DTYPE)
    recs["seq"] = np.arange(1, n + 1)
    recs["tsc"] = 1000 + np.arange(n) * 10
    recs["kind"] = int(HvExitKind.CPUID)
    recs["reason"] = CPUID
    recs["reason"][list(HLT_AT)] = HLT
    recs["kind"][list(HLT_AT)] = int(HvExitKind.HLT)
    with TraceWriter(path, {"vendor": 1, "vendor_name": "VMX", "cpus": 1}) as w:
        w.add(recs)


def test_jump_scrolls_the_log_to_the_exit_it_jumped_to(tmp_path: Path) -> None:
    path = tmp_path / "hlt.hvt"
    write_trace(path)
    src = ReplaySource(path)

    async def scenario() -> None:
        app = HvTraceApp(src)
        async with app.run_test(size=(160, 40)) as pilot:
            for _ in range(100):  # the replay loads in a worker
                await pilot.pause(0.05)
                if src.engine is not None:
                    break
            assert src.engine is not None
            if not src.paused:
                src.toggle_pause()
            src.seek_index(0)  # from the start (the replay may have played on: its TSC span is tiny)
            app._apply()  # the poller's hand-over: the batches it read before the seek are dropped
            await pilot.pause(0.2)  # laid out empty: no vertical scrollbar until the next layout
            view = app.query_one(LogView)
            assert len(app.recent) == 0
            assert not view.show_vertical_scrollbar
            view.follow = False  # the user scrolled up: the jump must still bring the hit into view
            for expected in HLT_AT:
                # Checked before any refresh: the log is on the hit at once, though the scrollbar the
                # grown log needs appears only at the next layout (CI once caught that refresh late).
                at = app.jump("HLT")
                assert at == expected
                assert view.cursor == len(app.recent) - 1
                top = int(view.scroll_offset.y)
                assert top <= view.cursor < top + view.size.height
                (hit,) = app.recent.rows(view.cursor, 1)
                assert int(hit["reason"]) == HLT
                assert int(hit["seq"]) == expected + 1
                await pilot.pause(0.2)  # refreshes and layouts later: still on the hit, nothing added
                assert len(app.recent) == expected + 1
                assert view.cursor == expected
                assert int(view.scroll_offset.y) == top

    try:
        asyncio.run(scenario())
    finally:
        src.close()
