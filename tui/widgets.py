"""The TUI's widgets: per-CPU rates with sparklines, the drill-down, the virtual log, the status line (the
reason table: reason_table.py).

They are fed 10 times a second under a storm of exits, so they draw their lines themselves (Textual's
Line API: one plain strip a line, no Rich rendering), repaint only the lines whose text changed, look
their styles up once (until the CSS changes), and never ask for a relayout, which repaints the screen.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

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
from textual.widgets import Label, Static

from .fmt import HEADER
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
        # force: a log that just grew (a replay jump) gets the scrollbar that allows scrolling only at its
        # next layout; the offset is bounded by the virtual size, which sync() already set.
        self.scroll_to(y=max(0, row - self.size.height // 2), animate=False, immediate=True, force=True)
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
