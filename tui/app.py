"""`hvtrace tui`: the Textual app. A thread worker polls the source every few milliseconds and queues
the batches under a lock, never waiting for the UI; a UI timer takes them 10 times a second, aggregates
them with numpy and repaints what changed."""

from __future__ import annotations

import asyncio
import gc
import re
import threading
import time
from collections.abc import Iterable
from typing import Any, ClassVar

import numpy as np
from textual import work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Footer, Header, Input, Label, Markdown

from hvtrace.decode.vendor import reason_names
from hvtrace.gdb_launch import default_elf
from hvtrace.trace.code import CodeCache
from hvtrace.trace.records import Records

from .break_screen import BreakHitScreen, BreakMessage
from .breaks import BreakController, BreakEvent, BreakHit, NoBreaks, gdbstub_port
from .fmt import format_record
from .model import ExitStats, reason_info
from .recent import LogFilter, RecentLog
from .sources import LiveSource, ReplaySource, Source
from .widgets import SORT_COLUMNS, CpuPanel, DrillPanel, LogView, ReasonTable, StatusBar

REFRESH_S = 0.1
BREAK_FILTER_HELP = "REASON [--cpu N] [--leaf L | --msr X | --cr N | --port P] [--gpa A-B]"

HELP = """\
# hvtrace tui

Live VM exits per CPU from the hypervisor's trace rings (or a replay file).

| key | action |
|---|---|
| `q` | quit (stops a session the TUI started) |
| `c` / `C` | reason table scope: next / previous CPU (or all) |
| `s` | sort the reason table: SUM, PER SEC, %, name |
| `z` | show / hide reasons with zero exits |
| `enter` | drill down into the selected reason (CPUID leaf, MSR, CR, port, GPA page) |
| `p` | pause / resume the log |
| `f` | filter the log: `cpu=0,1 reason=REGEX` (empty clears) |
| `/` `n` `N` | search the log (hex value: RIP / operand / GPA; else a reason regex); next; previous |
| `end` | follow the newest records again |
| `space` | replay: play / pause |
| `+` `-` | replay: speed x2 / /2 |
| `g` | replay: seek (`12.5` seconds, `#1000` record, `40%`) |
| `j` | replay: jump to the next exit of the selected reason |
| `b` | exit break on the selected reason (on the selected CPU, or any): toggle |
| `B` | exit break with a filter: `cpuid --leaf 1`, `msr_write --msr 0xc0000080 --cpu 1`, `any --cpu 0` |
| `r` | resume the VM paused at a break; `x` deletes every break |
| `ctrl+p` | command palette |
| `?` | this help |

At a break (QEMU sessions: gdb/MI on the session's gdbstub; the VM is paused) the hit screen shows the
exit decoded, the guest registers and instructions, and the VMCS / VMCB snapshot: `r` resume, `s` step
to the next exit of that CPU, `x` clear this break and resume, `escape` back (the VM stays paused).
Bochs has no gdbstub: there `b` says so.
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [("escape,q,question_mark", "dismiss", "Close")]
    DEFAULT_CSS = "HelpScreen { align: center middle; } HelpScreen > Markdown { width: 90; height: auto; }"

    def compose(self) -> ComposeResult:
        yield Markdown(HELP)


class Prompt(ModalScreen[str | None]):
    """One line of input; dismissed with the text (enter) or None (escape)."""

    BINDINGS: ClassVar[list[BindingType]] = [("escape", "cancel", "Cancel")]
    DEFAULT_CSS = "Prompt { align: center bottom; } Prompt > Vertical { height: 4; width: 100%; }"

    def __init__(self, title: str, value: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.value = value

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text)
            yield Input(value=self.value, id="prompt-input")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


def parse_filter(text: str) -> LogFilter:
    """``cpu=0,1 reason=REGEX`` (either part optional; a bare word is a reason regex)."""
    cpus: frozenset[int] | None = None
    reason: re.Pattern[str] | None = None
    for part in text.split():
        name, _, value = part.partition("=")
        if name == "cpu" and value:
            cpus = frozenset(int(x) for x in value.split(","))
        elif name == "reason" and value:
            reason = re.compile(value, re.IGNORECASE)
        elif not value:
            reason = re.compile(part, re.IGNORECASE)
        else:
            raise ValueError(f"unknown filter {part!r} (cpu=N,M reason=REGEX)")
    return LogFilter(cpus, reason)


class HvTraceApp(App[None]):
    TITLE = "hvtrace"
    CSS = """
    #top { height: 1fr; }
    #left { width: 1fr; }
    #reasons { height: 1fr; border: round $primary; }
    #log { height: 1fr; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark,f1", "help", "Help", key_display="?"),
        Binding("p", "pause_log", "Pause log"),
        Binding("f", "filter", "Filter"),
        Binding("slash", "search", "Search", key_display="/"),
        Binding("n", "search_next", "Next", show=False),
        Binding("N", "search_prev", "Prev", show=False),
        Binding("c", "next_cpu", "CPU"),
        Binding("C", "prev_cpu", "CPU-", show=False),
        Binding("s", "sort", "Sort"),
        Binding("z", "toggle_zero", "Zeros"),
        Binding("end", "follow", "Follow", show=False),
        Binding("b", "toggle_break", "Break"),
        Binding("B", "break_filter", "Break with filter", show=False),
        Binding("r", "resume", "Resume", show=False),
        Binding("x", "clear_breaks", "Clear breaks", show=False),
        Binding("space", "play_pause", "Play/Pause", show=False),
        Binding("plus", "faster", "Faster", show=False),
        Binding("minus", "slower", "Slower", show=False),
        Binding("g", "seek", "Seek", show=False),
        Binding("j", "jump", "Next of reason", show=False),
    ]

    def __init__(self, source: Source, *, log_capacity: int = 1 << 20) -> None:
        super().__init__()
        self.source = source
        self.stats = ExitStats(cpus=max(1, source.info.cpus), vendor=source.info.vendor)
        self.log_capacity = log_capacity
        self.recent = RecentLog(log_capacity, source.info.vendor)
        self.connected = False
        self.base_tsc: int | None = None
        self.read_rate = 0.0  # records/s read by the worker
        self.refreshes = 0
        self.search_term = ""
        self.log_paused = False
        self._stop = threading.Event()
        self._worker_done = threading.Event()
        self._rate_win: list[tuple[float, int]] = []
        self._all_keys: list[int] = []
        # poller thread -> UI thread, under _lock: the batches read since the last refresh, and the calls
        # (connected / failed) the UI thread makes at its next refresh
        self._lock = threading.Lock()
        self._pending: list[Records] = []
        self._calls: list[tuple[Any, tuple[Any, ...]]] = []
        self.code = CodeCache(None)  # RIP -> guest instruction for the log (a reader once connected)
        self.breaks: BreakController | None = None
        self.break_entries: dict[int, tuple[str, str]] = {}  # index -> (hv-break spec, description)
        self.break_hit: BreakHit | None = None
        self.break_state = ""

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="top"):
            with Vertical(id="left"):
                yield CpuPanel()
                yield ReasonTable()
            yield DrillPanel()
        yield LogView(self.recent, self._format)
        yield StatusBar("starting", id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "replay" if self.source.replay else "live"
        # the refresh uses these directly: a query would look in the screen on top (a prompt, a break)
        self._cpu_panel = self.query_one(CpuPanel)
        self._reason_table = self.query_one(ReasonTable)
        self._drill_panel = self.query_one(DrillPanel)
        self._log_view = self.query_one(LogView)
        self._status_bar = self.query_one(StatusBar)
        self._cpu_panel.ensure(self.stats.cpus)
        table = self._reason_table
        table.border_title = "reasons: all CPUs"
        table.focus()
        self._show_status()
        # What exists now (modules, widgets) lives as long as the app: out of the collector's full passes,
        # which otherwise walk it every few seconds (tens of ms, a skipped refresh under load).
        gc.freeze()
        self.set_interval(REFRESH_S, self._apply, name="refresh")  # drift-free; a late tick is skipped
        self._poll()

    def _format(self, rec: np.void) -> str:
        return format_record(rec, self.stats.vendor, self.base_tsc or 0, self.source.info.tsc_hz, self.code)

    # ------------------------------------------------------------------ worker
    @work(thread=True, exclusive=True, name="ring poller", exit_on_error=False)
    def _poll(self) -> None:
        """Read the source every 25 ms into ``_pending``; never waits for the UI thread, which takes the
        batches at its next refresh (_apply)."""
        poll_s = REFRESH_S / 4  # 25 ms: a 4096-record ring at 25k exits/s lasts 160 ms
        try:
            try:
                self.source.connect()
            except Exception as e:  # boot / attach / load failed: shown, never a crash
                if isinstance(self.source, LiveSource):
                    self.source.fail(str(e))
                self._call(self._on_failed, str(e))
                return
            self._call(self._on_connected)
            while not self._stop.is_set():
                try:
                    # a read and its hand-over are one step under the lock: a replay seek (_apply) then
                    # sees every record read so far either in _pending or in what it rebuilds from
                    with self._lock:
                        recs = self.source.poll()
                        if len(recs):
                            self._pending.append(recs)
                except Exception as e:  # a torn-down session: report, keep the UI
                    self._call(self._on_failed, f"read failed: {e}")
                    return
                self._stop.wait(poll_s)
        finally:
            self._worker_done.set()

    def _call(self, fn: Any, *args: Any) -> None:
        """From the worker: the UI thread runs ``fn(*args)`` at its next refresh (this never blocks)."""
        if self._stop.is_set():
            return
        with self._lock:
            self._calls.append((fn, args))

    def _on_failed(self, message: str) -> None:
        self.notify(message, title="hvtrace", severity="error", timeout=10)
        self._show_status()

    def _on_connected(self) -> None:
        info = self.source.info
        self.connected = True
        self.stats.vendor = info.vendor
        self.recent.vendor = info.vendor
        self.code = CodeCache(self.source.code_reader())
        self._all_keys = []
        for kind_key in reason_names(info.vendor):
            self._all_keys.append(kind_key)  # native reason with kind 0 (OTHER) for the zero rows
        self._cpu_panel.ensure(max(1, info.cpus))
        self._show_status()
        gc.freeze()  # and what the boot or attach made (the capture, its reader)

    def _apply(self) -> None:
        """UI thread, every REFRESH_S (a timer): run the worker's calls, take the batches it read,
        aggregate them (numpy), then repaint what changed."""
        src = self.source
        played: Records | None = None
        with self._lock:
            pending, self._pending = self._pending, []
            calls, self._calls = self._calls, []
            if isinstance(src, ReplaySource) and src.seeked:
                played = src.played()  # up to the new position: ``pending`` is older or in it
        for fn, args in calls:
            fn(*args)
        now = time.monotonic()
        n = 0
        if played is not None:
            self._rebuild_from(played)
        elif pending:
            batch = pending[0] if len(pending) == 1 else np.concatenate(pending)
            n = len(batch)
            if self.base_tsc is None:
                self.base_tsc = int(batch["tsc"].min())
            self.stats.add(batch)
            if not self.log_paused:
                self.recent.append(batch)
        self._rate_win.append((now, n))
        while len(self._rate_win) > 2 and now - self._rate_win[0][0] > 1.0:
            self._rate_win.pop(0)
        span = now - self._rate_win[0][0]
        if span > 0:
            self.read_rate = sum(k for _, k in self._rate_win[1:]) / span
        self.stats.tick(src.clock())
        self._refresh_views(n > 0)

    def _rebuild_from(self, played: Records) -> None:
        self.stats.reset()
        self.recent.clear()
        if len(played):
            self.base_tsc = int(played["tsc"][0]) if self.base_tsc is None else self.base_tsc
            self.stats.add(played)
            self.recent.append(played[-self.log_capacity :])
        self._reason_table.reset()
        self._log_view.sync()

    def _refresh_views(self, new_records: bool = True) -> None:
        """Repaint from the stats; every widget skips what did not change."""
        self.refreshes += 1
        panel = self._cpu_panel
        panel.ensure(self.stats.cpus)
        panel.update_from(self.stats)
        self._reason_table.update_from(self.stats, panel.selected, self._all_keys)
        self._drill_panel.update_from(self.stats, panel.selected)
        if new_records and not self.log_paused:
            self._log_view.sync()
        self._show_status()

    def _show_status(self) -> None:
        info = self.source.info
        flt = self.recent.filter
        parts = [
            f"backend {info.backend}",
            f"vendor {info.vendor_name}",
            f"CPUs {info.cpus}",
            f"guest {info.guest}",
            f"{self.read_rate:,.0f} rec/s",
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

    # ------------------------------------------------------------------ shutdown
    async def on_unmount(self) -> None:
        if self.breaks is not None:  # deletes the breaks and detaches gdb: the VM runs on
            await asyncio.to_thread(self.breaks.close)
        await self.stop_worker()
        gc.unfreeze()  # the app's objects may be collected again (the app may run inside a longer process)

    async def stop_worker(self, timeout: float = 10.0) -> None:
        """Stop the poller (never blocks the UI thread: the worker may still be in a boot or attach)."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        while not self._worker_done.is_set() and time.monotonic() < deadline:
            await self._sleep(0.02)

    @staticmethod
    async def _sleep(seconds: float) -> None:
        await asyncio.sleep(seconds)

    def close_source(self) -> None:
        self.source.close()

    # ------------------------------------------------------------------ reason table
    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "reasons":
            self._drill(int(str(event.row_key.value)))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "reasons" and event.row_key.value is not None:
            self._drill(int(str(event.row_key.value)))

    def _drill(self, key: int) -> None:
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

        self.push_screen(
            Prompt("search: hex value (RIP, operand, GPA) or reason regex", self.search_term), done
        )

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

    # ------------------------------------------------------------------ replay
    def _replay(self) -> ReplaySource | None:
        if isinstance(self.source, ReplaySource):
            return self.source
        self.notify("only in replay (--replay FILE)", severity="warning", timeout=3)
        return None

    def action_play_pause(self) -> None:
        if (src := self._replay()) is not None:
            src.toggle_pause()
            self._show_status()

    def action_faster(self) -> None:
        if (src := self._replay()) is not None:
            src.set_speed(src.speed * 2)
            self._show_status()

    def action_slower(self) -> None:
        if (src := self._replay()) is not None:
            src.set_speed(src.speed / 2)
            self._show_status()

    def seek(self, text: str) -> None:
        src = self._replay()
        if src is None or src.engine is None:
            return
        text = text.strip()
        try:
            if text.startswith("#"):
                src.seek_index(int(text[1:]))
            elif text.endswith("%"):
                src.seek_index(int(len(src.engine) * float(text[:-1]) / 100))
            else:
                src.seek_time(float(text))
        except ValueError:
            self.notify(f"seek: {text!r} is not '12.5', '#1000' or '40%'", severity="error")

    def action_seek(self) -> None:
        if self._replay() is not None:
            self.push_screen(
                Prompt("seek: seconds (12.5), record (#1000) or percent (40%)"),
                lambda t: self.seek(t) if t else None,
            )

    def jump(self, name: str) -> int | None:
        src = self._replay()
        if src is None:
            return None
        at = src.next_reason(name)
        if at is None:
            self.notify(f"no later {name}", severity="warning", timeout=3)
        return at

    def action_jump(self) -> None:
        key = self.query_one(ReasonTable).selected_key()
        if key is None:
            self.notify("select a reason in the table first", severity="warning", timeout=3)
            return
        self.jump(reason_info(self.stats.vendor, key).name)

    # ------------------------------------------------------------------ misc
    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    # ------------------------------------------------------------------ exit breakpoints
    def _break_controller(self) -> BreakController | None:
        if self.breaks is None:
            try:
                port = gdbstub_port(self.source)
            except NoBreaks as e:
                self.notify(str(e), title="breakpoints", severity="warning", timeout=6)
                return None
            self.breaks = BreakController(port, default_elf(), lambda ev: self.post_message(BreakMessage(ev)))
        return self.breaks

    def break_on(self, spec: str) -> None:
        """Arm ``hv-break SPEC`` (validated by gdb's hv-break; an error is shown)."""
        if (ctl := self._break_controller()) is not None:
            ctl.request("arm", spec)

    def selected_break_spec(self) -> str | None:
        key = self.query_one(ReasonTable).selected_key()
        if key is None:
            return None
        cpu = self.query_one(CpuPanel).selected
        # the native code, not its name: a native name can equal a vendor-neutral kind name
        return f"{key & 0xFFFF:#x}" + (f" --cpu {cpu}" if cpu is not None else "")

    def _break_status(self) -> str | None:
        if self.break_hit is not None:
            h = self.break_hit
            return f"VM PAUSED at break {h.entry} (CPU {h.cpu} {h.reason}): r resumes"
        if self.break_entries:
            return f"breaks {len(self.break_entries)} armed"
        if self.break_state in ("connecting", "error"):
            return f"breaks: {self.break_state}"
        return None

    def action_toggle_break(self) -> None:
        spec = self.selected_break_spec()
        if spec is None:
            self.notify("select a reason in the table first", severity="warning", timeout=3)
            return
        armed = next((i for i, (s, _) in self.break_entries.items() if s == spec), None)
        if armed is None:
            self.break_on(spec)
        elif (ctl := self._break_controller()) is not None:
            ctl.request("delete", str(armed))

    def action_break_filter(self) -> None:
        if self._break_controller() is None:
            return
        self.push_screen(
            Prompt(f"exit break: {BREAK_FILTER_HELP}", self.selected_break_spec() or ""),
            lambda t: self.break_on(t.strip()) if t and t.strip() else None,
        )

    def action_resume(self) -> None:
        if self.breaks is None or self.break_hit is None:
            self.notify("the VM is not paused at a break", severity="warning", timeout=3)
            return
        self.breaks.request("resume")

    def action_clear_breaks(self) -> None:
        if self.breaks is not None:
            self.breaks.request("delete", "all")

    def on_break_message(self, message: BreakMessage) -> None:
        ev: BreakEvent = message.event
        self.break_entries = ev.entries
        self.break_state = ev.state
        if ev.kind == "hit" and ev.hit is not None:
            self.break_hit = ev.hit
            self.push_screen(BreakHitScreen(ev.hit), self._after_hit)
        elif ev.kind == "state" and self.break_state == "running":
            self.break_hit = None
        elif ev.kind in ("armed", "deleted"):
            self.notify(ev.message, title="breakpoints", timeout=3)
        elif ev.kind == "error":
            self.notify(ev.message, title="breakpoints", severity="error", timeout=8)
        self._show_status()

    def _after_hit(self, what: str | None) -> None:
        if what is not None and self.breaks is not None:
            self.breaks.request(what)

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand(
            "Pause / resume log", "Stop or restart the recent-exits log", self.action_pause_log
        )
        yield SystemCommand("Filter log", "cpu=N,M reason=REGEX", self.action_filter)
        yield SystemCommand("Search log", "hex value or reason regex", self.action_search)
        yield SystemCommand("Next CPU", "Scope of the reason table", self.action_next_cpu)
        yield SystemCommand("Sort reasons", "SUM, PER SEC, %, name", self.action_sort)
        yield SystemCommand("Show / hide zero rows", "Reasons without exits", self.action_toggle_zero)
        yield SystemCommand("Break on the selected reason", "toggle an exit break", self.action_toggle_break)
        yield SystemCommand("Break with a filter", BREAK_FILTER_HELP, self.action_break_filter)
        yield SystemCommand("Resume the VM", "after a break", self.action_resume)
        yield SystemCommand("Clear all breaks", "delete every exit break", self.action_clear_breaks)
        yield SystemCommand("Help", "Keys and views", self.action_help)
        if self.source.replay:
            yield SystemCommand("Replay: play / pause", "", self.action_play_pause)
            yield SystemCommand("Replay: faster", "speed x2", self.action_faster)
            yield SystemCommand("Replay: slower", "speed /2", self.action_slower)
            yield SystemCommand("Replay: seek", "seconds, #record or percent", self.action_seek)
            yield SystemCommand("Replay: next of selected reason", "", self.action_jump)
