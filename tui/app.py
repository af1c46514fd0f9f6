"""`hvtrace tui`: the Textual app. It composes the views and wires the parts, each in its own module:
the poller thread (poller.py) reads the source and the UI timer takes its batches 10 times a second,
aggregates them with numpy and repaints what changed; the actions of the views, the replay and the
exit breaks (view_actions.py, replay_actions.py, break_actions.py); the keys, help and palette
(keys.py); the screens (screens.py, break_screen.py)."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import numpy as np
from textual.app import ComposeResult, SystemCommand
from textual.binding import BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Header

from hvtrace.decode.vendor import reason_names
from hvtrace.symbols import SymbolTable
from hvtrace.trace.code import CodeCache

from .break_actions import BreakActions
from .keys import MAIN, REPLAY, bindings, palette
from .messages import SourceEvent
from .poller import REFRESH_S, Poller
from .reason_table import ReasonTable
from .replay_actions import ReplayActions
from .sources import Source
from .view_actions import ViewActions
from .widgets import CpuPanel, DrillPanel, LogView, StatusBar


class HvTraceApp(ViewActions, ReplayActions, BreakActions):
    TITLE = "hvtrace"
    CSS = """
    #top { height: 1fr; }
    #left { width: 1fr; }
    #reasons { height: 1fr; border: round $primary; }
    #log { height: 1fr; }
    """
    BINDINGS: ClassVar[list[BindingType]] = list(bindings(MAIN, REPLAY))

    def __init__(
        self, source: Source, *, log_capacity: int = 1 << 20, symbols: SymbolTable | None = None
    ) -> None:
        super().__init__(source, log_capacity=log_capacity, symbols=symbols)
        self.poller = Poller(source)

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
        self.bind_widgets()
        self._cpu_panel.ensure(self.stats.cpus)
        table = self._reason_table
        table.border_title = "reasons: all CPUs"
        table.focus()
        self._show_status()
        # What exists now (modules, widgets) lives as long as the app: out of the collector's full passes,
        # which otherwise walk it every few seconds (tens of ms, a skipped refresh under load).
        gc.freeze()
        self.set_interval(REFRESH_S, self._apply, name="refresh")  # drift-free; a late tick is skipped
        self.run_worker(self.poller.run, name="ring poller", thread=True, exclusive=True, exit_on_error=False)

    # ------------------------------------------------------------------ refresh
    def _apply(self) -> None:
        """UI thread, every REFRESH_S (a timer): handle the poller's events, take the batches it read,
        aggregate them (numpy), then repaint what changed."""
        taken = self.poller.take()
        for event in taken.events:
            self._on_source(event)
        n = 0
        if taken.played is not None:
            self.rebuild_from(taken.played)
        elif taken.batches:
            batch = taken.batches[0] if len(taken.batches) == 1 else np.concatenate(taken.batches)
            # A poll returns each CPU's records in turn: merge them by exit TSC, so the log shows the
            # CPUs interleaved in time order, not one CPU's run after another's.
            batch = batch[np.argsort(batch["tsc"], kind="stable")]
            n = len(batch)
            if self.base_tsc is None:
                self.base_tsc = int(batch["tsc"].min())
            self.stats.add(batch)
            self._find_slide(batch)
            if not self.log_paused:
                self.recent.append(batch)
        self.rate.add(time.monotonic(), n)
        self.stats.tick(self.source.clock())
        self._refresh_views(n > 0)

    def _on_source(self, event: SourceEvent) -> None:
        if event.failed:
            self.notify(event.failed, title="hvtrace", severity="error", timeout=10)
            self._show_status()
            return
        info = self.source.info
        self.connected = True
        self.stats.vendor = info.vendor
        self.recent.vendor = info.vendor
        self.code = CodeCache(self.source.code_reader())
        self._all_keys = list(reason_names(info.vendor))  # native reasons for the zero rows
        self._cpu_panel.ensure(max(1, info.cpus))
        self._show_status()
        gc.freeze()  # and what the boot or attach made (the capture, its reader)

    # ------------------------------------------------------------------ shutdown
    async def on_unmount(self) -> None:
        await self.close_breaks()
        await self.poller.stop()
        gc.unfreeze()  # the app's objects may be collected again (the app may run inside a longer process)

    # ------------------------------------------------------------------ command palette
    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)

        def find(action: str) -> Callable[[], object] | None:
            fn: Callable[[], object] | None = getattr(self, f"action_{action}", None)
            return fn

        for title, text, fn in palette(find, self.source.replay):
            yield SystemCommand(title, text, fn)
