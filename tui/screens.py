"""The TUI's small modal screens: the help (generated from the key table) and a one-line prompt."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Markdown

from .keys import help_markdown


class HelpScreen(ModalScreen[None]):
    """The key table, in a scrolling box no taller than the terminal (arrows, page keys, mouse wheel)."""

    BINDINGS: ClassVar[list[BindingType]] = [("escape,q,question_mark", "dismiss", "Close")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 94; height: auto; max-height: 100%; }
    HelpScreen Markdown { height: auto; }
    """

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-scroll"):
            yield Markdown(help_markdown())

    def on_mount(self) -> None:
        self.query_one(VerticalScroll).focus()  # the scroll keys go to the help, not the app below


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
