"""The reason table re-sorts by count as exits arrive: the cursor stays on the reason the user selected
(DataTable alone keeps the row index, so a re-sort would put another reason under it and `b` would arm a
break on a reason the user never chose)."""

from __future__ import annotations

import asyncio

import numpy as np
from textual.app import App, ComposeResult

from hvtrace.abi import HvExitKind
from hvtrace.decode.vendor import VMX
from hvtrace.trace.records import RECORD_DTYPE
from hvtrace.tui.model import ExitStats
from hvtrace.tui.widgets import ReasonTable

# VMX basic exit reasons (SDM Vol. 3C Appendix C)
CPUID, HLT, RDMSR = 10, 12, 31
KINDS = {CPUID: HvExitKind.CPUID, HLT: HvExitKind.HLT, RDMSR: HvExitKind.MSR_READ}


def records(counts: dict[int, int]) -> np.ndarray:
    reasons = np.concatenate([np.full(n, r) for r, n in counts.items()])
    recs = np.zeros(len(reasons), RECORD_DTYPE)
    recs["seq"] = np.arange(1, len(recs) + 1)
    recs["reason"] = reasons
    recs["kind"] = [int(KINDS[int(r)]) for r in reasons]
    return recs


class TableApp(App[None]):
    def compose(self) -> ComposeResult:
        yield ReasonTable()


def test_the_cursor_follows_the_selected_reason_through_resorts_and_new_rows() -> None:
    stats = ExitStats(cpus=1, vendor=VMX.number)

    async def scenario() -> None:
        app = TableApp()
        async with app.run_test(size=(100, 20)) as pilot:
            table = app.query_one(ReasonTable)
            stats.add(records({HLT: 50, CPUID: 10}))
            table.update_from(stats, None, [])
            await pilot.pause()
            names = [str(table.get_row_at(i)[0]) for i in range(table.row_count)]
            assert names == [VMX.reason_name(HLT), VMX.reason_name(CPUID)]
            table.move_cursor(row=1)
            assert (table.selected_key() or 0) & 0xFFFF == CPUID
            # CPUID overtakes HLT (rows swap) and RDMSR appears on top: the cursor moves with CPUID
            stats.add(records({CPUID: 100, RDMSR: 500}))
            table.update_from(stats, None, [])
            await pilot.pause()
            names = [str(table.get_row_at(i)[0]) for i in range(table.row_count)]
            assert names == [VMX.reason_name(RDMSR), VMX.reason_name(CPUID), VMX.reason_name(HLT)]
            stats.add(records({CPUID: 1000}))
            table.update_from(stats, None, [])
            await pilot.pause()
            assert str(table.get_row_at(0)[0]) == VMX.reason_name(CPUID)
            assert (table.selected_key() or 0) & 0xFFFF == CPUID
            assert table.cursor_row == 0

    asyncio.run(scenario())
