"""The TUI's widgets: per-CPU rates with sparklines, the reason table, the drill-down, the virtual log.

They are fed 10 times a second under a storm of exits, so they draw their lines themselves (Textual's
Line API: one plain strip a line, no Rich rendering), repaint only the lines whose text changed, look
their styles up once (until the CSS changes), and never ask for a relayout, which repaints the screen.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, Self

import numpy as np
from rich.segment import Segment
from rich.style import Style
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.visual import VisualType
from textual.widgets import DataTable, Label, Static

from .fmt import HEADER, format_ticks
from .model import ExitStats, reason_info
from .recent import RecentLog


def sparkline(data: list[float], width: int) -> str:
    """``width`` bars over ``data`` (bucketed by max when longer, stretched when shorter), from 0 to the
    peak."""
    values = np.asarray(data, dtype=np.float64)
    if width <= 0 or not values.size:
        return " " * max(0, width)
    edges = (np.arange(width + 1) * values.size) // width
    if values.size >= width:
        values = np.maximum.reduceat(values, edges[:-1])
    else:
        values = values[np.minimum(edges[:-1], values.size - 1)]
    peak = float(values.max())
    levels = np.zeros(width, dtype=np.int64) if peak <= 0 else np.rint(values / peak * 7).astype(np.int64)
    return "".join(SPARK_BARS[i] for i in levels.tolist())


SPARK_BARS = "▁▂▃▄▅▆▇█"


class CpuPanel(ScrollView):
    """A line per CPU and one for all of them: label, exits/s, total, and a sparkline of the last minute
    (exits per second, from 0 to the minute's peak). ``selected`` is the scope of the reason table (None =
    all). One Line-API widget: a repaint draws only the lines whose text changed."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"cpupanel--spark"}
    DEFAULT_CSS = """
    CpuPanel { height: auto; max-height: 10; border: round $primary; overflow-x: hidden; }
    CpuPanel > .cpupanel--spark { color: $primary; }
    """
    LABEL_WIDTH = 44

    def __init__(self) -> None:
        super().__init__(id="cpus")
        self.border_title = "exits per CPU (last minute)"
        self.cpus = 0
        self.selected: int | None = None
        self._order: list[int | None] = [None]  # line -> CPU (None: all)
        self._text: list[str] = [""]
        self._data: list[list[float]] = [[]]
        self._bars: list[str] = [""]  # the drawn sparkline per line ("" after new data)
        self._styles: tuple[Style, Style, Style] | None = None  # plain, selected, sparkline
        self.virtual_size = Size(0, 1)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles = None

    def ensure(self, cpus: int) -> None:
        if cpus > self.cpus:
            added = cpus - self.cpus
            self._order += list(range(self.cpus, cpus))
            self._text += [""] * added
            self._data += [[]] * added
            self._bars += [""] * added
            self.cpus = cpus
            self.virtual_size = Size(0, len(self._order))
            self.refresh()

    def select(self, cpu: int | None) -> None:
        if cpu != self.selected:
            old, self.selected = self.selected, cpu
            for line, shown in enumerate(self._order):
                if shown in (old, cpu):
                    self._refresh_line(line)

    def _refresh_line(self, line: int) -> None:
        """Repaint one line (content coordinates: the line minus the scroll offset)."""
        self.refresh(Region(0, line - int(self.scroll_offset.y), self.size.width, 1))

    def update_from(self, stats: ExitStats) -> None:
        rates = stats.rates().sum(axis=1) if stats.keys else np.zeros(stats.cpus)
        per_cpu = stats.counts.sum(axis=1)
        for line, cpu in enumerate(self._order):
            if cpu is None:
                rate, total, name = float(rates.sum()), int(per_cpu.sum()), "all"
            else:
                rate = float(rates[cpu]) if cpu < len(rates) else 0.0
                total = int(per_cpu[cpu]) if cpu < len(per_cpu) else 0
                name = f"CPU {cpu}"
            text = f"{name:<7} {rate:>11,.0f}/s {total:>14,} total"
            spark = stats.sparkline(cpu)
            if spark != self._data[line]:
                self._data[line] = spark
                self._bars[line] = ""
            elif text == self._text[line]:
                continue
            self._text[line] = text
            self._refresh_line(line)

    def render_line(self, y: int) -> Strip:
        if self._styles is None:  # looked up once: a DOM walk each time costs more than the line
            base = self.rich_style
            self._styles = (
                base,
                base + Style(reverse=True),
                self.get_component_rich_style("cpupanel--spark"),
            )
        plain, selected, spark = self._styles
        width = self.size.width
        line = y + int(self.scroll_offset.y)
        if not 0 <= line < len(self._order):
            return Strip.blank(width, plain)
        bars_width = max(0, width - self.LABEL_WIDTH)
        if len(self._bars[line]) != bars_width:
            self._bars[line] = sparkline(self._data[line], bars_width)
        label = self._text[line][: self.LABEL_WIDTH].ljust(self.LABEL_WIDTH)
        style = selected if self._order[line] == self.selected else plain
        return Strip([Segment(label, style), Segment(self._bars[line], spark)]).adjust_cell_length(
            width, plain
        )


SORT_COLUMNS = ("sum", "rate", "pct", "reason")


def _num(v: object) -> float:
    try:
        return float(str(v).replace(",", "").rstrip("%"))
    except ValueError:
        return 0.0


class ReasonTable(DataTable[str]):
    """Reasons with SUM, PER SEC and %: rows added as reasons appear, only the changed rows repainted."""

    _rows_only = False  # (a class default: DataTable's constructor already refreshes)

    def __init__(self) -> None:
        super().__init__(id="reasons", cursor_type="row", zebra_stripes=True)
        self.hide_zero = True
        self.sort_by = "sum"
        self._shown: dict[str, tuple[str, ...]] = {}
        self._order: list[str] = []
        self.cell_updates = 0  # for tests and the benchmark: cells rewritten
        self._styles: dict[str, Style] | None = None
        self._strips: dict[tuple[int, tuple[str, ...], Style, int, int], Strip] = {}
        self._names: dict[str, str] = {}  # row key -> reason name (the "reason" sort)

    def on_mount(self) -> None:
        self.add_column("REASON", key="reason", width=22)
        self.add_column("KIND", key="kind", width=13)
        self.add_column("SUM", key="sum", width=13)
        self.add_column("PER SEC", key="rate", width=11)
        self.add_column("%", key="pct", width=7)
        self.add_column("AVG TIME", key="time", width=11)  # handling time (tsc_resume - tsc)

    def update_from(
        self, stats: ExitStats, cpu: int | None, all_keys: list[int], tsc_hz: float | None = None
    ) -> None:
        counts = stats.scope_counts(cpu)
        rates = stats.scope_rates(cpu)
        avg = stats.scope_avg_ticks(cpu)
        total = int(counts.sum()) or 1
        keys = list(stats.keys)
        if not self.hide_zero:
            present = {k & 0xFFFF for k in stats.keys}
            keys += [k for k in all_keys if (k & 0xFFFF) not in present]
        wanted: dict[str, tuple[str, ...]] = {}
        for key in keys:
            slot = stats.slot_of.get(key)
            n = int(counts[slot]) if slot is not None and slot < len(counts) else 0
            if self.hide_zero and n == 0:
                continue
            r = float(rates[slot]) if slot is not None and slot < len(rates) else 0.0
            t = float(avg[slot]) if slot is not None and slot < len(avg) else float("nan")
            wanted[str(key)] = (f"{n:,}", f"{r:,.0f}", f"{100.0 * n / total:.1f}%", format_ticks(t, tsc_hz))
        reshaped = False  # rows added, removed or reordered: a full repaint
        changed: list[str] = []
        selected = self.selected_key()
        for rk in [k for k in self._shown if k not in wanted]:
            self.remove_row(rk)
            del self._shown[rk]
            reshaped = True
        self._rows_only = True  # update_cell would repaint the whole table: the changed rows, below
        try:
            for rk, vals in wanted.items():
                old = self._shown.get(rk)
                if old is None:
                    info = reason_info(stats.vendor, int(rk))
                    self.add_row(info.name, info.kind_name, *vals, key=rk)
                    self._names[rk] = info.name
                    self.cell_updates += 6
                    reshaped = True
                else:
                    for col, new, prev in zip(("sum", "rate", "pct", "time"), vals, old, strict=True):
                        if new != prev:
                            self.update_cell(rk, col, new)
                            self.cell_updates += 1
                    if vals != old:
                        changed.append(rk)
                self._shown[rk] = vals
        finally:
            self._rows_only = False
        if self._resort(wanted) or reshaped:
            self._keep_cursor_on(selected)
            self.refresh()
        else:
            for rk in changed:
                self.refresh_row(self.get_row_index(rk))

    def refresh(
        self, *regions: Region, repaint: bool = True, layout: bool = False, recompose: bool = False
    ) -> Self:
        if self._rows_only and not (regions or layout or recompose):
            return self  # a cell update: update_from repaints its row
        return super().refresh(*regions, repaint=repaint, layout=layout, recompose=recompose)

    def _resort(self, wanted: dict[str, tuple[str, ...]]) -> bool:
        """Sort the rows if they are out of order (ties in any order); True if they were."""
        shown = [str(row.key.value) for row in self.ordered_rows]
        if self.sort_by == "reason":
            names = [self._names[rk] for rk in shown]
            in_order = names == sorted(names)
        else:
            col = {"sum": 0, "rate": 1, "pct": 0}[self.sort_by]
            values = [-_num(wanted[rk][col]) for rk in shown]
            in_order = values == sorted(values)
        if in_order:
            return False
        if self.sort_by == "reason":
            self.sort("reason")
        else:
            self.sort(self.sort_by, key=_num, reverse=True)
        return True

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles = None  # focus or theme changed

    def _line_styles(self) -> dict[str, Style]:
        if self._styles is None:
            base = self.rich_style
            comp = self.get_component_rich_style
            self._styles = {
                "header": base + comp("datatable--header"),
                "even": base + comp("datatable--even-row") if self.zebra_stripes else base,
                "odd": base + comp("datatable--odd-row") if self.zebra_stripes else base,
            }
            self._styles["cursor-even"] = self._styles["even"] + comp("datatable--cursor")
            self._styles["cursor-odd"] = self._styles["odd"] + comp("datatable--cursor")
        return self._styles

    def render_line(self, y: int) -> Strip:
        """One line straight from the cell strings, cached per row content. (DataTable's own path renders
        every cell through Rich, and any cell update invalidates every cell: a third of a millisecond a
        cell, each refresh.) The styles and the click metadata (row) are DataTable's: header, zebra rows,
        row cursor."""
        width = self.size.width
        scroll_x, scroll_y = (int(v) for v in self.scroll_offset)
        styles = self._line_styles()
        if self.show_header and y < self.header_height:
            row_index = -1
            cells = tuple(c.label.plain for c in self.ordered_columns)
            style = styles["header"]
        else:
            row_index = y - (self.header_height if self.show_header else 0) + scroll_y
            if not 0 <= row_index < self.row_count:
                return Strip.blank(width, styles["even"])
            cells = tuple(str(v) for v in self.get_row(self.ordered_rows[row_index].key))
            parity = "odd" if row_index % 2 else "even"
            cursor = self.show_cursor and self.cursor_type == "row" and row_index == self.cursor_row
            style = styles[f"cursor-{parity}" if cursor else parity]
        key = (row_index, cells, style, width, scroll_x)
        strip = self._strips.get(key)
        if strip is None:
            if len(self._strips) > 1024:
                self._strips.clear()
            pad = " " * self.cell_padding
            text = ""
            for column, cell in zip(self.ordered_columns, cells, strict=False):
                inner = column.get_render_width(self) - 2 * self.cell_padding
                text += f"{pad}{cell[:inner]:<{inner}}{pad}"
            text = text[scroll_x : scroll_x + width].ljust(width)
            # one segment: with a row cursor a click needs only the row (column 0 as DataTable's margin)
            meta = Style.from_meta({"row": row_index, "column": 0})
            strip = self._strips[key] = Strip([Segment(text, style + meta)], width)
        return strip

    def reset(self) -> None:
        self.clear()
        self._shown.clear()
        self._names.clear()

    def _keep_cursor_on(self, key: int | None) -> None:
        """After rows moved, put the cursor back on the reason the user selected (DataTable keeps the row
        index): a break armed with ``b`` is on the reason the user chose, not on whatever sorted into
        its place meanwhile."""
        if key is not None and str(key) in self._shown and self.selected_key() != key:
            self.move_cursor(row=self.get_row_index(str(key)))

    def selected_key(self) -> int | None:
        if not self.row_count:
            return None
        try:
            rk = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except Exception:
            return None
        return int(str(rk.value))


DRILL_ROWS = 200


class DrillList(ScrollView, can_focus=True):
    """The rows of the drill-down, virtual (Line API): a repaint formats only the lines on screen."""

    DEFAULT_CSS = "DrillList { height: 1fr; }"
    HEADER = f"{'VALUE':<18} {'COUNT':>11} {'%':>6}"

    def __init__(self) -> None:
        super().__init__(id="drill-table")
        self.rows: list[tuple[str, str, str]] = []
        self._style = Style()

    def set_rows(self, rows: list[tuple[str, str, str]]) -> None:
        """Show ``rows``; only the lines that changed are repainted."""
        if rows == self.rows:
            return
        old, self.rows = self.rows, rows
        if len(rows) != len(old):
            self.virtual_size = Size(len(self.HEADER), len(rows))
            self.refresh()
            return
        top = int(self.scroll_offset.y)
        for line in range(top, min(len(rows), top + self.size.height)):
            if rows[line] != old[line]:
                self.refresh(Region(0, line - top, self.size.width, 1))

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        row = int(self.scroll_offset.y) + y
        if not 0 <= row < len(self.rows):
            return Strip.blank(width)
        value, count, pct = self.rows[row]
        text = f"{value:<18} {count:>11} {pct:>6}"[int(self.scroll_offset.x) :]
        return Strip([Segment(text[:width].ljust(width), self._style)], width)


class DrillPanel(Vertical):
    """The breakdown of the selected reason by its operand."""

    DEFAULT_CSS = """
    DrillPanel { width: 40; border: round $secondary; }
    DrillPanel > .drill-header { text-style: bold; }
    """

    def __init__(self) -> None:
        super().__init__(id="drill")
        self.border_title = "drill-down"
        self.key: int | None = None
        self._title = Label("select a reason (enter)", id="drill-title", markup=False)
        self._text = "select a reason (enter)"
        self._list = DrillList()

    def compose(self) -> ComposeResult:
        yield self._title
        yield Label(DrillList.HEADER, classes="drill-header", markup=False)
        yield self._list

    def update_from(self, stats: ExitStats, cpu: int | None) -> None:
        rows: list[tuple[str, str, str]] = []
        if self.key is None:
            text = "select a reason (enter)"
        else:
            name = reason_info(stats.vendor, self.key).name
            dd = stats.drilldown(self.key, cpu, DRILL_ROWS)
            if dd is None:
                text = f"{name}: no operand breakdown"
            else:
                text = f"{name} by {dd[0]}"
                rows = [(r.text, f"{r.count:,}", f"{r.percent:.1f}") for r in dd[1]]
        if text != self._text:
            self._text = text
            self._title.update(text)
        self._list.set_rows(rows)


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
        self._scroll_to_cursor()
        # A log just rebuilt (a replay jump) takes its new height at the next refresh: scroll again then.
        self.call_after_refresh(self._scroll_to_cursor)

    def _scroll_to_cursor(self) -> None:
        if self.cursor is not None:
            self.scroll_to(y=max(0, self.cursor - self.size.height // 2), animate=False, immediate=True)
        self.refresh()

    def on_mouse_scroll_up(self) -> None:
        self.follow = False


class StatusBar(Static):
    """One line of plain text (no markup: a filter regex may hold brackets); repainted only on change."""

    DEFAULT_CSS = "StatusBar { height: 1; background: $boost; color: $text; padding: 0 1; }"

    def __init__(self, text: str = "", *, id: str | None = None) -> None:
        super().__init__(text, markup=False, id=id)
        self.text = text
        self._style: Style | None = None

    def update(self, content: VisualType = "", *, layout: bool = True) -> None:
        self.text = str(content)
        super().update(content, layout=layout)

    def show(self, text: str) -> None:
        if text != self.text:
            self.update(text, layout=False)  # a single line: its size never changes

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._style = None

    def render_line(self, y: int) -> Strip:
        """The line drawn directly (Line API) instead of through a Rich Content render."""
        width = self.size.width
        if self._style is None:
            self._style = self.rich_style
        style = self._style
        if y:
            return Strip.blank(width, style)
        return Strip([Segment(self.text[:width].ljust(width), style)], width)
