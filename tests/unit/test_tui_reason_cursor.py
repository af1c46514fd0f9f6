"""The reason table re-sorts by count as exits arrive: the cursor stays on the reason the user selected
(DataTable alone keeps the row index, so a re-sort would put another reason under it and `b` would arm a
break on a reason the user never chose). Until the user chooses, the cursor stays on the top row: the
reason on top at the first repaint is no choice."""

from __future__ import annotations

import asyncio

import numpy as np
from textual.app import App, ComposeResult
from textual.widgets import DataTable

from hvtrace.abi import HvExitKind
from hvtrace.decode.vendor import VMX
from hvtrace.trace.records import RECORD_DTYPE
from hvtrace.tui.model import ExitStats
from hvtrace.tui.reason_table import ReasonTable

# VMX basic exit reasons (SDM Vol. 3C Appendix C)
CPUID, HLT, VMCALL, RDMSR = 10, 12, 18, 31
KINDS = {CPUID: HvExitKind.CPUID, HLT: HvExitKind.HLT, VMCALL: HvExitKind.VMCALL, RDMSR: HvExitKind.MSR_READ}


def records(counts: dict[int, int]) -> np.ndarray:
    reasons = np.concatenate([np.full(n, r) for r, n in counts.items()])
    recs = np.zeros(len(reasons), RECORD_DTYPE)
    recs["seq"] = np.arange(1, len(recs) + 1)
    recs["reason"] = reasons
    recs["kind"] = [int(KINDS[int(r)]) for r in reasons]
    return recs


class TableApp(App[None]):
    def __init__(self) -> None:
        super().__init__()
        self.highlighted: list[int] = []  # what the app's drill-down follows
        self.selected: list[int] = []  # what enter drills into

    def compose(self) -> ComposeResult:
        yield ReasonTable()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.highlighted.append(int(str(event.row_key.value)) & 0xFFFF)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.selected.append(int(str(event.row_key.value)) & 0xFFFF)


def names_of(table: ReasonTable) -> list[str]:
    return [str(table.get_row_at(i)[0]) for i in range(table.row_count)]


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


def test_until_the_user_chooses_the_cursor_stays_on_the_top_row_and_highlights_it() -> None:
    """The live TUI's first repaint may come during the guest's self-test, before its CPUID storm: VMCALL
    is on top then. CPUID overtakes it: the cursor (never moved) is on CPUID, the top row, the drill-down
    follows it and enter drills into CPUID (not into VMCALL, where a cursor that followed its first row
    would be). enter makes it the user's choice: the cursor then stays on CPUID through re-sorts."""
    stats = ExitStats(cpus=1, vendor=VMX.number)

    async def scenario() -> None:
        app = TableApp()
        async with app.run_test(size=(100, 20)) as pilot:
            table = app.query_one(ReasonTable)
            stats.add(records({VMCALL: 35, CPUID: 7}))
            table.update_from(stats, None, [])
            await pilot.pause()
            assert names_of(table) == [VMX.reason_name(VMCALL), VMX.reason_name(CPUID)]
            assert table.cursor_row == 0
            assert app.highlighted[-1:] == [VMCALL]
            stats.add(records({CPUID: 3000}))
            table.update_from(stats, None, [])
            await pilot.pause()
            assert names_of(table) == [VMX.reason_name(CPUID), VMX.reason_name(VMCALL)]
            assert table.cursor_row == 0
            assert (table.selected_key() or 0) & 0xFFFF == CPUID
            assert app.highlighted[-1:] == [CPUID]
            await pilot.press("enter")
            await pilot.pause()
            assert app.selected == [CPUID]
            # chosen: VMCALL overtakes CPUID again, the cursor moves down with CPUID
            stats.add(records({VMCALL: 10000}))
            table.update_from(stats, None, [])
            await pilot.pause()
            assert names_of(table) == [VMX.reason_name(VMCALL), VMX.reason_name(CPUID)]
            assert table.cursor_row == 1
            assert (table.selected_key() or 0) & 0xFFFF == CPUID
            assert app.highlighted[-1:] == [CPUID]

    asyncio.run(scenario())


def test_a_replay_rebuild_puts_the_cursor_back_on_the_chosen_reason() -> None:
    """A replay's seek or jump clears the table and fills it again (reset): the reason the user chose gets
    the cursor back when its row returns (`j` again jumps to the next exit of that reason)."""
    stats = ExitStats(cpus=1, vendor=VMX.number)

    async def scenario() -> None:
        app = TableApp()
        async with app.run_test(size=(100, 20)) as pilot:
            table = app.query_one(ReasonTable)
            stats.add(records({HLT: 50, CPUID: 10}))
            table.update_from(stats, None, [])
            await pilot.pause()
            await pilot.press("down")  # the user's choice: CPUID
            assert (table.selected_key() or 0) & 0xFFFF == CPUID
            table.reset()
            stats.reset()
            stats.add(records({HLT: 5, CPUID: 1}))
            table.update_from(stats, None, [])
            await pilot.pause()
            assert names_of(table) == [VMX.reason_name(HLT), VMX.reason_name(CPUID)]
            assert (table.selected_key() or 0) & 0xFFFF == CPUID
            assert app.highlighted[-1:] == [CPUID]

    asyncio.run(scenario())
