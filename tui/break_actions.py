"""The exit-break actions: arm / toggle / filter / resume / clear, through the break controller
(tui/breaks.py), and its events shown (status line, notifications, the hit screen)."""

from __future__ import annotations

import asyncio

from hvtrace.paths import image_path

from .base import TuiBase
from .break_screen import BreakHitScreen
from .breaks import BreakController, NoBreaks, gdbstub_port
from .keys import BREAK_FILTER_HELP
from .messages import BreakMessage
from .reason_table import ReasonTable
from .screens import Prompt
from .widgets import CpuPanel


class BreakActions(TuiBase):
    def _break_controller(self) -> BreakController | None:
        if self.breaks is None:
            try:
                port = gdbstub_port(self.source)
            except NoBreaks as e:
                self.notify(str(e), title="breakpoints", severity="warning", timeout=6)
                return None
            self.breaks = BreakController(port, image_path(), lambda ev: self.post_message(BreakMessage(ev)))
        return self.breaks

    async def close_breaks(self) -> None:
        """Delete the breaks and detach gdb (the VM runs on)."""
        if self.breaks is not None:
            await asyncio.to_thread(self.breaks.close)

    def break_on(self, spec: str) -> None:
        """Arm ``hv-break SPEC`` (validated by gdbext; an error is shown)."""
        if (ctl := self._break_controller()) is not None:
            ctl.request("arm", spec)

    def selected_break_spec(self) -> str | None:
        key = self.query_one(ReasonTable).selected_key()
        if key is None:
            return None
        cpu = self.query_one(CpuPanel).selected
        # the native code, not its name: a native name can equal a vendor-neutral kind name
        return f"{key & 0xFFFF:#x}" + (f" --cpu {cpu}" if cpu is not None else "")

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
        ev = message.event
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
