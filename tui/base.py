"""The TUI's state and its repaint, shared by the app and its action groups (view_actions,
replay_actions, break_actions): the aggregates, the log, the break table, and the status line."""

from __future__ import annotations

import numpy as np
from textual.app import App

from hvtrace.symbols import SymbolTable
from hvtrace.trace.code import CodeCache
from hvtrace.trace.records import Records

from .breaks import BreakController, BreakHit
from .fmt import format_record
from .model import ExitStats
from .poller import ReadRate
from .reason_table import ReasonTable
from .recent import RecentLog
from .sources import Source
from .symbolize import LiveSlide
from .widgets import CpuPanel, DrillPanel, LogView, StatusBar


class TuiBase(App[None]):
    def __init__(
        self, source: Source, *, log_capacity: int = 1 << 20, symbols: SymbolTable | None = None
    ) -> None:
        super().__init__()
        self.symbols = symbols  # guest symbols for the log (--symbols); its slide is found from the records
        self.slide = LiveSlide(symbols) if symbols is not None else None
        self.source = source
        self.stats = ExitStats(cpus=max(1, source.info.cpus), vendor=source.info.vendor)
        self.log_capacity = log_capacity
        self.recent = RecentLog(log_capacity, source.info.vendor)
        self.connected = False
        self.base_tsc: int | None = None
        self.rate = ReadRate()  # records/s read by the worker
        self.refreshes = 0
        self.search_term = ""
        self.log_paused = False
        self.code = CodeCache(None)  # RIP -> guest instruction for the log (a reader once connected)
        self.breaks: BreakController | None = None
        self.break_entries: dict[int, tuple[str, str]] = {}  # index -> (hv-break spec, description)
        self.break_hit: BreakHit | None = None
        self.break_state = ""
        self._all_keys: list[int] = []

    def bind_widgets(self) -> None:
        """The refresh uses these directly: a query would look in the screen on top (a prompt, a break)."""
        self._cpu_panel = self.query_one(CpuPanel)
        self._reason_table = self.query_one(ReasonTable)
        self._drill_panel = self.query_one(DrillPanel)
        self._log_view = self.query_one(LogView)
        self._status_bar = self.query_one(StatusBar)

    def _format(self, rec: np.void) -> str:
        hz = self.source.info.tsc_hz
        return format_record(rec, self.stats.vendor, self.base_tsc or 0, hz, self.code, symbols=self.symbols)

    def _find_slide(self, recs: Records) -> None:
        """Until the KASLR slide is known: look for it in new records; say it once found."""
        line = self.slide.add(recs) if self.slide is not None else None
        if line is not None:
            self.notify(line, title="hvtrace")
            self._log_view.refresh()

    def _refresh_views(self, new_records: bool = True) -> None:
        """Repaint from the stats; every widget skips what did not change."""
        self.refreshes += 1
        panel = self._cpu_panel
        panel.ensure(self.stats.cpus)
        panel.update_from(self.stats)
        self._reason_table.update_from(self.stats, panel.selected, self._all_keys, self.source.info.tsc_hz)
        self._drill_panel.update_from(self.stats, panel.selected)
        if new_records and not self.log_paused:
            self._log_view.sync()
        self._show_status()

    def _apply(self) -> None:
        """Take what the poller read and repaint: the app's refresh timer (app.py)."""
        raise NotImplementedError

    def rebuild_from(self, played: Records) -> None:
        """After a replay seek or jump: the aggregates and the log from everything played so far."""
        self.stats.reset()
        self.recent.clear()
        if len(played):
            self.base_tsc = int(played["tsc"][0]) if self.base_tsc is None else self.base_tsc
            self.stats.add(played)
            self._find_slide(played)
            self.recent.append(played[-self.log_capacity :])
        self._reason_table.reset()
        self._log_view.sync()

    def _show_status(self) -> None:
        info = self.source.info
        flt = self.recent.filter
        parts = [
            f"backend {info.backend}",
            f"vendor {info.vendor_name}",
            f"CPUs {info.cpus}",
            f"guest {info.guest}",
            f"{self.rate.value:,.0f} rec/s",
            f"drops {self.source.lost()}",
            self.source.state(),
        ]
        if self.log_paused:
            parts.append("LOG PAUSED")
        if (brk := self._break_status()) is not None:
            parts.append(brk)
        if flt.active:
            parts.append(f"filter {flt.describe()}")
        self._status_bar.show(" │ ".join(parts))

    def _break_status(self) -> str | None:
        if self.break_hit is not None:
            h = self.break_hit
            return f"VM PAUSED at break {h.entry} (CPU {h.cpu} {h.reason}): r resumes"
        if self.break_entries:
            return f"breaks {len(self.break_entries)} armed"
        if self.break_state in ("connecting", "error"):
            return f"breaks: {self.break_state}"
        return None
