"""TUI: the `?` help scrolls when it is taller than the terminal; the search box starts empty."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from textual.containers import VerticalScroll
from textual.pilot import Pilot
from textual.widgets import Input

from hvtrace.tui.app import HvTraceApp
from hvtrace.tui.keys import KEYS
from hvtrace.tui.screens import HelpScreen, Prompt
from hvtrace.tui.sources import ReplaySource
from tests.unit.test_tracefile import write

Scenario = Callable[[HvTraceApp, Pilot[None]], Awaitable[None]]


def run_app(tmp_path: Path, size: tuple[int, int], scenario: Scenario) -> None:
    path = tmp_path / "t.hvt"
    write(path, per_cpu=200)
    src = ReplaySource(path)

    async def main() -> None:
        app = HvTraceApp(src)
        async with app.run_test(size=size) as pilot:
            await scenario(app, pilot)

    try:
        asyncio.run(main())
    finally:
        src.close()


def test_help_taller_than_the_terminal_scrolls_to_its_last_key(tmp_path: Path) -> None:
    async def scenario(app: HvTraceApp, pilot: Pilot[None]) -> None:
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        box = app.screen.query_one(VerticalScroll)
        assert box.outer_size.height <= 20  # fits the terminal
        assert box.max_scroll_y > 0  # the key table is taller: it must scroll
        assert box.scroll_y == 0
        await pilot.press("end")
        await pilot.pause()
        assert box.scroll_y == box.max_scroll_y
        assert len(KEYS) > 20  # more keys than lines: the last ones are only reachable by scrolling

    run_app(tmp_path, (100, 20), scenario)


def test_search_box_starts_empty_and_n_repeats_the_last_term(tmp_path: Path) -> None:
    async def scenario(app: HvTraceApp, pilot: Pilot[None]) -> None:
        await pilot.press("slash")
        await pilot.pause()
        assert isinstance(app.screen, Prompt)
        await pilot.press(*"CPUID", "enter")
        await pilot.pause()
        assert app.search_term == "CPUID"
        await pilot.press("slash")
        await pilot.pause()
        assert isinstance(app.screen, Prompt)
        assert app.screen.query_one(Input).value == ""
        await pilot.press("escape")
        await pilot.pause()
        assert app.search_term == "CPUID"  # kept for n / N

    run_app(tmp_path, (160, 48), scenario)
