"""The actions of the reason table (scope, sort, zeros, drill-down) and of the log (pause, follow,
filter, search)."""

from __future__ import annotations

import re

from textual.widgets import DataTable

from .base import TuiBase
from .reason_table import SORT_COLUMNS, ReasonTable
from .recent import LogFilter, parse_filter
from .screens import HelpScreen, Prompt
from .widgets import CpuPanel, DrillPanel, LogView


class ViewActions(TuiBase):
    # ------------------------------------------------------------------ reason table
    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "reasons":
            self._drill(int(str(event.row_key.value)))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "reasons" and event.row_key.value is not None:
            self._drill(int(str(event.row_key.value)))

    def _drill(self, key: int) -> None:
        if not self.is_running:
            # A highlight the table posted just before a quit reaches the app while it shuts down: its
            # widgets are gone by then (Textual closes them before it drains the app's messages).
            return
        drill = self.query_one(DrillPanel)
        drill.key = key
        drill.update_from(self.stats, self.query_one(CpuPanel).selected)

    def action_next_cpu(self, step: int = 1) -> None:
        panel = self.query_one(CpuPanel)
        order: list[int | None] = [None, *range(self.stats.cpus)]
        panel.select(order[(order.index(panel.selected) + step) % len(order)])
        table = self.query_one(ReasonTable)
        table.border_title = "reasons: " + ("all CPUs" if panel.selected is None else f"CPU {panel.selected}")
        self._refresh_views(False)

    def action_prev_cpu(self) -> None:
        self.action_next_cpu(-1)

    def action_sort(self) -> None:
        table = self.query_one(ReasonTable)
        table.sort_by = SORT_COLUMNS[(SORT_COLUMNS.index(table.sort_by) + 1) % len(SORT_COLUMNS)]
        self.notify(f"sorted by {table.sort_by}", timeout=2)
        self._refresh_views(False)

    def action_toggle_zero(self) -> None:
        table = self.query_one(ReasonTable)
        table.hide_zero = not table.hide_zero
        self._refresh_views(False)

    # ------------------------------------------------------------------ log
    def action_pause_log(self) -> None:
        self.log_paused = not self.log_paused
        self.query_one(LogView).paused = self.log_paused
        self._show_status()

    def action_follow(self) -> None:
        view = self.query_one(LogView)
        view.follow = True
        view.cursor = None
        view.sync()

    def action_filter(self) -> None:
        def done(text: str | None) -> None:
            if text is None:
                return
            try:
                flt = parse_filter(text)
            except (ValueError, re.error) as e:
                self.notify(str(e), severity="error")
                return
            self.set_log_filter(flt)

        self.push_screen(Prompt("filter the log: cpu=0,1 reason=REGEX (empty: none)", ""), done)

    def set_log_filter(self, flt: LogFilter) -> None:
        self.recent.set_filter(flt)
        self.query_one(LogView).sync()
        self._show_status()

    def action_search(self) -> None:
        def done(text: str | None) -> None:
            if text:
                self.search_term = text
                self.search(text)

        # An empty box (n / N repeat the last term): a new search is typed, not edited from the last one.
        self.push_screen(Prompt("search: hex value (RIP, operand, GPA) or reason regex", ""), done)

    def search(self, term: str, *, backwards: bool = False) -> int | None:
        view = self.query_one(LogView)
        start = view.cursor if view.cursor is not None else int(view.scroll_offset.y) - 1
        row = self.recent.search(term, start, backwards=backwards)
        if row is None:
            self.notify(f"not found: {term}", severity="warning", timeout=3)
            return None
        view.goto(row)
        return row

    def action_search_next(self) -> None:
        if self.search_term:
            self.search(self.search_term)

    def action_search_prev(self) -> None:
        if self.search_term:
            self.search(self.search_term, backwards=True)

    def action_help(self) -> None:
        self.push_screen(HelpScreen())
