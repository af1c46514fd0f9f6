"""The TUI's widgets: per-CPU rates with sparklines, the reason table, the drill-down, the virtual log."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from rich.segment import Segment
from rich.style import Style
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import DataTable, Label, Sparkline, Static

from .fmt import HEADER
from .model import ExitStats, reason_info
from .recent import RecentLog


class CpuRow(Horizontal):
    """One line: CPU label, exits/s, total, sparkline of the last minute."""

    DEFAULT_CSS = """
    CpuRow { height: 1; }
    CpuRow > Label { width: 44; }
    CpuRow > Sparkline { width: 1fr; height: 1; }
    CpuRow.-selected > Label { text-style: reverse; }
    """

    def __init__(self, cpu: int | None) -> None:
        super().__init__(id="cpu-all" if cpu is None else f"cpu-{cpu}")
        self.cpu = cpu
        self._text = ""
        self._data: list[float] = []

    def compose(self) -> ComposeResult:
        yield Label("", classes="cpu-label")
        yield Sparkline([], summary_function=max)

    def show(self, rate: float, total: int, spark: list[float]) -> None:
        name = "all" if self.cpu is None else f"CPU {self.cpu}"
        text = f"{name:<7} {rate:>11,.0f}/s {total:>14,} total"
        if text != self._text:
            self._text = text
            self.query_one(Label).update(text)
        if spark != self._data:
            self._data = spark
            self.query_one(Sparkline).data = spark


class CpuPanel(VerticalScroll):
    """The rows of every CPU and the sum; ``selected`` is the scope of the reason table (None = all)."""

    DEFAULT_CSS = "CpuPanel { height: auto; max-height: 10; border: round $primary; }"

    def __init__(self) -> None:
        super().__init__(id="cpus")
        self.border_title = "exits per CPU (last minute)"
        self.cpus = 0
        self.selected: int | None = None

    def compose(self) -> ComposeResult:
        yield CpuRow(None)

    def ensure(self, cpus: int) -> None:
        if cpus > self.cpus:
            self.mount_all([CpuRow(c) for c in range(self.cpus, cpus)])
            self.cpus = cpus
        self._mark()

    def _mark(self) -> None:
        for row in self.query(CpuRow):
            row.set_class(row.cpu == self.selected, "-selected")

    def select(self, cpu: int | None) -> None:
        self.selected = cpu
        self._mark()

    def update_from(self, stats: ExitStats) -> None:
        rates = stats.rates().sum(axis=1) if stats.keys else np.zeros(stats.cpus)
        for row in self.query(CpuRow):
            cpu = row.cpu
            rate = float(rates.sum()) if cpu is None else (float(rates[cpu]) if cpu < len(rates) else 0.0)
            row.show(rate, stats.total(cpu), stats.sparkline(cpu))


SORT_COLUMNS = ("sum", "rate", "pct", "reason")


def _num(v: object) -> float:
    try:
        return float(str(v).replace(",", "").rstrip("%"))
    except ValueError:
        return 0.0


class ReasonTable(DataTable[str]):
    """Reasons with SUM, PER SEC and %: rows added as reasons appear, only changed cells updated."""

    def __init__(self) -> None:
        super().__init__(id="reasons", cursor_type="row", zebra_stripes=True)
        self.hide_zero = True
        self.sort_by = "sum"
        self._shown: dict[str, tuple[str, str, str]] = {}
        self._order: list[str] = []
        self.cell_updates = 0  # for tests and the benchmark: cells rewritten

    def on_mount(self) -> None:
        self.add_column("REASON", key="reason", width=22)
        self.add_column("KIND", key="kind", width=13)
        self.add_column("SUM", key="sum", width=13)
        self.add_column("PER SEC", key="rate", width=11)
        self.add_column("%", key="pct", width=7)

    def update_from(self, stats: ExitStats, cpu: int | None, all_keys: list[int]) -> None:
        counts = stats.scope_counts(cpu)
        rates = stats.scope_rates(cpu)
        total = int(counts.sum()) or 1
        keys = list(stats.keys)
        if not self.hide_zero:
            present = {k & 0xFFFF for k in stats.keys}
            keys += [k for k in all_keys if (k & 0xFFFF) not in present]
        wanted: dict[str, tuple[str, str, str]] = {}
        for key in keys:
            slot = stats.slot_of.get(key)
            n = int(counts[slot]) if slot is not None and slot < len(counts) else 0
            if self.hide_zero and n == 0:
                continue
            r = float(rates[slot]) if slot is not None and slot < len(rates) else 0.0
            wanted[str(key)] = (f"{n:,}", f"{r:,.0f}", f"{100.0 * n / total:.1f}%")
        for rk in [k for k in self._shown if k not in wanted]:
            self.remove_row(rk)
            del self._shown[rk]
        for rk, vals in wanted.items():
            old = self._shown.get(rk)
            if old is None:
                info = reason_info(stats.vendor, int(rk))
                self.add_row(info.name, info.kind_name, *vals, key=rk)
                self.cell_updates += 5
            else:
                for col, new, prev in zip(("sum", "rate", "pct"), vals, old, strict=True):
                    if new != prev:
                        self.update_cell(rk, col, new)
                        self.cell_updates += 1
            self._shown[rk] = vals
        self._resort(wanted)

    def _resort(self, wanted: dict[str, tuple[str, str, str]]) -> None:
        if self.sort_by == "reason":
            order = sorted(wanted, key=lambda k: reason_info(0, int(k)).key)
        else:
            col = {"sum": 0, "rate": 1, "pct": 0}[self.sort_by]
            order = sorted(wanted, key=lambda k: -_num(wanted[k][col]))
        current = [str(rk.value) for rk in self.rows]
        if order != current:
            if self.sort_by == "reason":
                self.sort("reason")
            else:
                self.sort(self.sort_by, key=_num, reverse=True)

    def reset(self) -> None:
        self.clear()
        self._shown.clear()

    def selected_key(self) -> int | None:
        if not self.row_count:
            return None
        try:
            rk = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except Exception:
            return None
        return int(str(rk.value))


class DrillPanel(Vertical):
    """The breakdown of the selected reason by its operand."""

    DEFAULT_CSS = """
    DrillPanel { width: 40; border: round $secondary; }
    DrillPanel DataTable { height: 1fr; }
    """

    def __init__(self) -> None:
        super().__init__(id="drill")
        self.border_title = "drill-down"
        self.key: int | None = None
        self._rows: list[tuple[str, str, str]] = []

    def compose(self) -> ComposeResult:
        yield Label("select a reason (enter)", id="drill-title")
        table: DataTable[str] = DataTable(id="drill-table", cursor_type="row")
        yield table

    def on_mount(self) -> None:
        table = self.query_one("#drill-table", DataTable)
        table.add_column("VALUE", key="value", width=18)
        table.add_column("COUNT", key="count", width=11)
        table.add_column("%", key="pct", width=6)

    def update_from(self, stats: ExitStats, cpu: int | None) -> None:
        title = self.query_one("#drill-title", Label)
        table = self.query_one("#drill-table", DataTable)
        rows: list[tuple[str, str, str]] = []
        if self.key is None:
            text = "select a reason (enter)"
        else:
            name = reason_info(stats.vendor, self.key).name
            dd = stats.drilldown(self.key, cpu)
            if dd is None:
                text = f"{name}: no operand breakdown"
            else:
                text = f"{name} by {dd[0]}"
                rows = [(f"{r.value:#x}", f"{r.count:,}", f"{r.percent:.1f}") for r in dd[1][:200]]
        title.update(text)
        if rows != self._rows:
            self._rows = rows
            table.clear()
            table.add_rows(rows)


class LogView(ScrollView):
    """The recent-exits log, virtual: only the visible lines are formatted (Line API). ``fmt`` makes a
    record's line (tui/fmt.py format_record: with the app's per-RIP instruction cache)."""

    DEFAULT_CSS = "LogView { height: 1fr; border: round $accent; }"
    WIDTH = 240  # columns to scroll through: the fixed columns (with the instruction) and the detail

    class Followed(Message):
        pass

    def __init__(self, log: RecentLog, fmt: Callable[[np.void], str]) -> None:
        super().__init__(id="log")
        self.recent = log
        self.fmt = fmt
        self.follow = True
        self.paused = False
        self.cursor: int | None = None  # a search hit
        self.border_title = HEADER
        self._style = Style()
        self._hit = Style(reverse=True)

    def sync(self) -> None:
        """New rows arrived (or the filter changed): resize, follow the tail, repaint."""
        self.virtual_size = Size(self.WIDTH, len(self.recent))
        if self.follow:
            self.scroll_end(animate=False, immediate=True)
        self.refresh()

    def render_line(self, y: int) -> Strip:
        row = int(self.scroll_offset.y) + y
        recs = self.recent.rows(row, 1)
        if not len(recs):
            return Strip.blank(self.size.width)
        text = self.fmt(recs[0])
        x = int(self.scroll_offset.x)
        text = text[x : x + self.size.width]
        style = self._hit if row == self.cursor else self._style
        return Strip([Segment(text.ljust(self.size.width), style)], self.size.width)

    def goto(self, row: int) -> None:
        self.cursor = row
        self.follow = False
        self.scroll_to(y=max(0, row - self.size.height // 2), animate=False, immediate=True)
        self.refresh()

    def on_mouse_scroll_up(self) -> None:
        self.follow = False


class StatusBar(Static):
    DEFAULT_CSS = "StatusBar { height: 1; background: $boost; color: $text; padding: 0 1; }"
