"""The reason table: exit reasons with SUM, PER SEC, % and AVG TIME, re-sorted as the counts change, the
cursor on the reason the user chose (or on the top row until the user chooses one)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Self

from rich.segment import Segment
from rich.style import Style
from textual.coordinate import Coordinate
from textual.geometry import Region
from textual.strip import Strip
from textual.widgets import DataTable

from .fmt import format_ticks
from .model import ExitStats, reason_info

SORT_COLUMNS = ("sum", "rate", "pct", "reason")


def _num(v: object) -> float:
    try:
        return float(str(v).replace(",", "").rstrip("%"))
    except ValueError:
        return 0.0


class ReasonTable(DataTable[str]):
    """Reasons with SUM, PER SEC and %: rows added as reasons appear, only the changed rows repainted.

    The rows re-sort as counts change. Until the user picks a reason (moves the cursor: keys, a click; or
    selects one: enter) the cursor stays on the top row, the biggest; once picked, the cursor stays on
    that reason wherever it sorts to. Either way the highlighted reason (the drill-down's) is the one
    under the cursor: a re-sort that puts another reason there highlights it."""

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
        self._chosen: str | None = None  # the row key the user put the cursor on, or selected
        self._moving = False  # the table moves the cursor itself (rows added, removed, sorted, cleared)

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
        selected, row = self.selected_key(), self.cursor_row
        with self._own_moves():
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
                self._keep_cursor_on(self._chosen)
                reshaped = True
        if reshaped:
            self.refresh()
            if self.cursor_row == row and self.selected_key() != selected:
                # Another reason sorted under the cursor (it did not move, so DataTable said nothing).
                self._announce_highlight()
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
        with self._own_moves():  # the user's choice outlives a replay's seek: back on it when its row returns
            self.clear()
        self._shown.clear()
        self._names.clear()

    @contextmanager
    def _own_moves(self) -> Iterator[None]:
        """The cursor moves inside are the table's own (rows added, removed, sorted, cleared), no choice."""
        self._moving = True
        try:
            yield
        finally:
            self._moving = False

    def watch_cursor_coordinate(self, old_coordinate: Coordinate, new_coordinate: Coordinate) -> None:
        super().watch_cursor_coordinate(old_coordinate, new_coordinate)
        if not self._moving and old_coordinate != new_coordinate:  # the user's keys or click
            key = self.selected_key()
            self._chosen = None if key is None else str(key)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """enter or a click on the highlighted row: that reason is the user's choice too (the event
        bubbles on to the app, which drills into it)."""
        if event.row_key.value is not None:
            self._chosen = event.row_key.value
            with self._own_moves():
                self._keep_cursor_on(self._chosen)

    def _keep_cursor_on(self, key: str | None) -> None:
        """After rows moved, put the cursor back on the reason the user chose (DataTable keeps the row
        index): a break armed with ``b`` is on the reason the user chose, not on whatever sorted into
        its place meanwhile. Nothing chosen yet: the cursor stays where it is, on the top row (the
        default cursor is no choice; following it would pin whatever was on top at the first repaint,
        before the biggest reason overtook it)."""
        if key is not None and key in self._shown and self.selected_key() != int(key):
            self.move_cursor(row=self.get_row_index(key))

    def _announce_highlight(self) -> None:
        if self.row_count and self.show_cursor and self.cursor_type == "row":
            rk = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
            self.post_message(DataTable.RowHighlighted(self, self.cursor_row, rk))

    def selected_key(self) -> int | None:
        if not self.row_count:
            return None
        try:
            rk = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except Exception:
            return None
        return int(str(rk.value))
