"""The replay's actions: play / pause, speed, seek, jump to the next exit of a reason."""

from __future__ import annotations

from .base import TuiBase
from .model import reason_info
from .reason_table import ReasonTable
from .screens import Prompt
from .sources import ReplaySource
from .widgets import LogView


class ReplayActions(TuiBase):
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
            return None
        # Rebuild the views up to the hit now (not at the next refresh) and put the log on it: the hit
        # is the last record played, so the log's last row (a filter may hide it: then the row before).
        # Through the poller's hand-over, which drops the batches it read before the jump: applied at
        # the next refresh they would be counted, and logged, twice.
        self._apply()
        if len(self.recent):
            self.query_one(LogView).goto(len(self.recent) - 1)
        return at

    def action_jump(self) -> None:
        key = self.query_one(ReasonTable).selected_key()
        if key is None:
            self.notify("select a reason in the table first", severity="warning", timeout=3)
            return
        self.jump(reason_info(self.stats.vendor, key).name)
