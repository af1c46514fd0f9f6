"""`hvtrace tui` on real QEMU (SVM under TCG): Textual pilot tests on a live CPUID storm and on a replay
file made from one, and a tmux test of the real command in a real terminal."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hvtrace.abi import HvExitKind
from hvtrace.trace.capture import Capture
from hvtrace.trace.tracefile import TraceFile
from hvtrace.tui.app import HvTraceApp
from hvtrace.tui.reason_table import ReasonTable
from hvtrace.tui.sources import LiveSource, ReplaySource
from hvtrace.tui.widgets import LogView, StatusBar
from tests.components import require
from tests.integration.conftest import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.qemu]

SIZE = (160, 48)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(") ")[-1][:1] != "Z"


async def until(pilot: Any, cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        await pilot.pause(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def table_rows(app: Any) -> dict[str, list[str]]:
    table = app.query_one(ReasonTable)
    return {
        str(table.get_row_at(i)[0]): [str(c) for c in table.get_row_at(i)] for i in range(table.row_count)
    }


def log_lines(app: Any) -> list[str]:
    view = app.query_one(LogView)
    return [view.render_line(y).text for y in range(view.size.height)]


def test_live_storm_counts_grow_table_shows_cpuid_log_pauses_and_a_dead_vm_is_shown(tmp_path: Path) -> None:
    src = LiveSource.start(backend="qemu", cpus=2, memory_mb=64, cmdline="storm=1")
    pid: int | None = None

    async def scenario() -> None:
        nonlocal pid
        app = HvTraceApp(src, log_capacity=200_000)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.stats.records > 1000, 60, "the first records")
            pid = src.session_pid
            assert pid is not None
            first = app.stats.records
            refreshes = app.refreshes
            await pilot.pause(2.0)
            assert app.stats.records > first + 1000  # counts grow
            # the refresh timer keeps repainting (its rate, 10/s, is measured by benchmarks/tui_load.py)
            assert app.refreshes > refreshes
            rows = table_rows(app)
            assert "CPUID" in rows
            assert int(rows["CPUID"][2].replace(",", "")) > 1000
            assert float(rows["CPUID"][4].rstrip("%")) > 90
            assert app.stats.cpus == 2
            assert app.stats.total(0) > 0
            assert app.stats.total(1) > 0
            # the log shows records, newest at the bottom
            assert len(app.recent) > 1000
            assert any("CPUID" in line and "leaf" in line for line in log_lines(app))
            status = str(app.query_one(StatusBar).render())
            for part in ("backend qemu", "vendor SVM", "CPUs 2", "live"):
                assert part in status
            # drill-down: the highlighted reason (CPUID, the biggest) broken down by leaf. The cursor the
            # user never moved is on the top row, not on whatever was on top at the first repaint (that
            # may come during the self-test, before the storm: VMMCALL then)
            table = app.query_one(ReasonTable)
            assert table.cursor_row == 0
            assert str(table.get_row_at(0)[0]) == "CPUID"
            await pilot.press("enter")
            await pilot.pause(0.3)
            assert "CPUID leaf" in str(app.query_one("#drill-title").render())
            # pause stops the log (the counts go on)
            await pilot.press("p")
            await pilot.pause(0.3)
            frozen, counted = app.recent.appended, app.stats.records
            shown = log_lines(app)
            await pilot.pause(1.0)
            assert app.recent.appended == frozen
            assert log_lines(app) == shown
            assert app.stats.records > counted
            await pilot.press("p")
            await until(pilot, lambda: app.recent.appended > frozen, 5, "the log to resume")
            # filter by CPU
            await pilot.press("f")
            await pilot.press(*"cpu=1", "enter")
            await pilot.pause(0.3)
            assert len(app.recent) > 0
            assert (app.recent.rows(0, len(app.recent))["cpu"] == 1).all()
            (tmp_path / "live.svg").write_text(app.export_screenshot())
            # the VM dies: shown, no crash
            os.kill(pid, 9)
            await until(pilot, lambda: "exited" in src.state(), 15, "the dead VM in the status")
            await pilot.pause(0.3)
            assert "exited" in str(app.query_one(StatusBar).render())
            assert app.is_running
        assert "CPUID" in (tmp_path / "live.svg").read_text()

    try:
        asyncio.run(scenario())
    finally:
        src.close()
    assert pid is not None
    deadline = time.monotonic() + 10
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not pid_alive(pid)


@pytest.fixture(scope="module")
def storm_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tui") / "storm.hvt"
    with Capture.start(backend="qemu", cpus=2, memory_mb=128, cmdline="storm=1 ring=262144") as cap:
        cap.record(path, count=40000)
    return path


def test_replay_plays_pauses_seeks_and_jumps(storm_file: Path) -> None:
    recs = TraceFile.open(storm_file).records(ordered=True)
    n_cpuid = int((recs["kind"] == HvExitKind.CPUID).sum())
    src = ReplaySource(storm_file)

    async def scenario() -> None:
        app = HvTraceApp(src)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.stats.records > 0, 10, "replayed records")
            assert "replay storm.hvt" in str(app.query_one(StatusBar).render())
            # pause: nothing more is played
            await pilot.press("space")
            await pilot.pause(0.3)
            held = app.stats.records
            await pilot.pause(0.6)
            assert app.stats.records == held
            assert "paused" in src.state()
            # faster, play to the end: the table holds the file's counts
            await pilot.press("space", *["plus"] * 10)
            await until(pilot, lambda: app.stats.records == len(recs), 30, "the end of the file")
            assert src.speed == 1024
            rows = table_rows(app)
            assert int(rows["CPUID"][2].replace(",", "")) == n_cpuid
            assert len(app.recent) == len(recs)
            assert "end" in src.state()
            # seek by record: the views are rebuilt from the records before it
            await pilot.press("space")  # pause
            app.seek("#100")
            await until(pilot, lambda: app.stats.records == 100, 5, "the seek")
            assert len(app.recent) == 100
            # jump to the next occurrence of a reason
            later = np.flatnonzero(recs["kind"][101:] == HvExitKind.CPUID)
            at = app.jump("CPUID")
            assert at == 101 + int(later[0])
            await until(pilot, lambda: app.stats.records == at + 1, 5, "the jump")
            last = app.recent.rows(len(app.recent) - 1, 1)
            assert int(last["kind"][0]) == HvExitKind.CPUID
            # seek by time: half the span
            hz = src.hz
            half = (int(recs["tsc"][-1]) - int(recs["tsc"][0])) / hz / 2
            app.seek(f"{half}")
            want = int(np.searchsorted(recs["tsc"], np.uint64(int(recs["tsc"][0]) + int(half * hz))))
            await until(pilot, lambda: app.stats.records == want, 5, "the time seek")

    try:
        asyncio.run(scenario())
    finally:
        src.close()


def test_tmux_real_terminal_shows_the_live_table_and_quits(tmp_path: Path) -> None:
    require("tmux")
    sock = f"hvtrace-tui-{uuid.uuid4().hex[:8]}"
    cmd = (
        f"{sys.executable} -m hvtrace tui --backend qemu --cpus 2 --append storm=1; "
        f"echo TUI-EXIT=$? > {tmp_path / 'rc'}; sleep 60"
    )
    tmux = ["tmux", "-L", sock]
    # the pane's size must win: shutil.get_terminal_size() prefers COLUMNS / LINES from the environment
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    qemu_pids: set[int] = set()

    def capture() -> str:
        return subprocess.run(
            [*tmux, "capture-pane", "-p", "-t", "tui"], capture_output=True, text=True, check=False
        ).stdout

    def qemus() -> set[int]:
        r = subprocess.run(["pgrep", "-f", "qemu-system-x86_64"], capture_output=True, text=True, check=False)
        pids = {int(p) for p in r.stdout.split()}
        # ours: a descendant of the tmux pane
        mine = set()
        for p in pids:
            try:
                if f"HVTRACE_TUI_TEST={sock}".encode() in Path(f"/proc/{p}/environ").read_bytes():
                    mine.add(p)
            except OSError:
                pass
        return mine

    try:
        subprocess.run(
            [
                *tmux,
                "new-session",
                "-d",
                "-s",
                "tui",
                "-x",
                "160",
                "-y",
                "48",
                "-e",
                f"HVTRACE_TUI_TEST={sock}",
                cmd,
            ],
            check=True,
            env=env,
        )
        wait_for(lambda: "CPUID" in capture() and "live" in capture(), 90, "the live table in the pane")
        screen = capture()
        assert "hvtrace" in screen  # the header
        for part in ("REASON", "SUM", "PER SEC", "CPUID", "vendor SVM", "CPUs 2", "exits per CPU"):
            assert part in screen, part
        assert "Quit" in screen  # the footer bindings
        qemu_pids = qemus()
        assert qemu_pids, "no QEMU of this TUI found"
        subprocess.run([*tmux, "send-keys", "-t", "tui", "q"], check=True)
        rc = tmp_path / "rc"
        wait_for(rc.exists, 30, "the TUI to quit")
        assert rc.read_text().strip() == "TUI-EXIT=0"
        wait_for(lambda: not any(pid_alive(p) for p in qemu_pids), 10, "QEMU to be stopped with the TUI")
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True, check=False)
        for p in qemu_pids:
            if pid_alive(p):
                os.kill(p, 9)
