"""The screen of an exit-break hit: the exit decoded, the guest registers and instructions, the VMCS/VMCB
snapshot (hv-vmcs's decoder); the VM stays paused until one of the keys says what next."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from .breaks import BreakHit
from .keys import HIT, bindings


class BreakHitScreen(Screen[str | None]):
    """Dismissed with what to do: 'resume', 'step', 'clear', or None (keep the VM paused, look around)."""

    BINDINGS: ClassVar[list[BindingType]] = list(bindings(HIT))
    DEFAULT_CSS = """
    BreakHitScreen #hit { height: auto; border: round $error; padding: 0 1; }
    BreakHitScreen #vmcs { height: 1fr; border: round $primary; padding: 0 1; }
    """

    def __init__(self, hit: BreakHit) -> None:
        super().__init__()
        self.hit = hit

    def compose(self) -> ComposeResult:
        hit = Static(Text("\n".join(self.hit.text)), id="hit")
        what = "step: next exit" if self.hit.step else f"break {self.hit.entry}"
        hit.border_title = f"{what} on CPU {self.hit.cpu}: {self.hit.reason} — VM paused"
        yield hit
        with VerticalScroll(id="vmcs") as scroll:
            scroll.border_title = "VMCS / VMCB snapshot at the hit (hv-vmcs)"
            yield Static(Text("\n".join(self.hit.vmcs)))
        yield Footer()

    def action_decide(self, what: str | None) -> None:
        self.dismiss(what)
