"""The TUI's keys are declared once (tui/keys.py): the help screen, the Bindings and the command palette
are generated from that table. Checked on the real app (Textual pilot) over a small replay file."""

from __future__ import annotations

import asyncio
from pathlib import Path

from textual.command import CommandPalette
from textual.dom import DOMNode
from textual.widgets import Markdown

from hvtrace.tui.app import HvTraceApp
from hvtrace.tui.break_screen import BreakHitScreen
from hvtrace.tui.keys import HIT, KEYS, MAIN, REPLAY, help_markdown
from hvtrace.tui.screens import HelpScreen
from hvtrace.tui.sources import ReplaySource
from tests.unit.test_tracefile import write


def bound(node: type[DOMNode]) -> set[tuple[str, str]]:
    """(key, action) of every binding of a class, as Textual merged them."""
    merged = node._merged_bindings
    assert merged is not None
    return {(b.key, b.action) for bs in merged.key_to_bindings.values() for b in bs}


def test_every_key_is_in_the_help_and_bound_on_its_screen() -> None:
    text = help_markdown()
    for k in KEYS:
        assert f"| `{k.shown}` | {k.help} |" in text, k
    app_bound = bound(HvTraceApp)
    for k in KEYS:
        if k.where in (MAIN, REPLAY) and k.action not in ("command_palette", "select_cursor"):
            for key in k.keys.split(","):
                assert (key, k.action) in app_bound, k
    assert {(k.keys, k.action) for k in KEYS if k.where == HIT} <= bound(BreakHitScreen)


def test_help_key_shows_the_generated_help_and_the_palette_offers_every_action(tmp_path: Path) -> None:
    path = tmp_path / "t.hvt"
    write(path, per_cpu=200)
    src = ReplaySource(path)

    async def scenario() -> None:
        app = HvTraceApp(src)
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.press("question_mark")
            await pilot.pause()
            assert isinstance(app.screen, HelpScreen)
            shown = app.screen.query_one(Markdown).source
            assert shown == help_markdown()
            await pilot.press("escape")
            await pilot.pause()
            titles = [c.title for c in app.get_system_commands(app.screen)]
            for k in KEYS:
                if k.where == MAIN and k.palette:
                    assert k.label in titles, k
                if k.where == REPLAY:
                    assert f"Replay: {k.label}" in titles, k
            await pilot.press("ctrl+p")
            await pilot.pause()
            assert isinstance(app.screen, CommandPalette)

    try:
        asyncio.run(scenario())
    finally:
        src.close()
