"""TUI load while the CPUID storm runs: CPU use of the TUI process, refresh rate and cadence, records/s,
drops.

Boots QEMU (SVM under TCG, storm=1) on CPUS CPUs, runs the TUI headless (Textual run_test, so the
screen is still composed and rendered) for SECONDS, and prints the numbers. No asserts.
"""

from __future__ import annotations

import asyncio
import sys
import time

import numpy as np

from hvtrace.tui.app import HvTraceApp
from hvtrace.tui.sources import LiveSource

CPUS = int(sys.argv[1]) if len(sys.argv) > 1 else 2
SECONDS = float(sys.argv[2]) if len(sys.argv) > 2 else 10.0
FIRST_RECORDS_S = 120.0  # boot and attach


class TimedApp(HvTraceApp):
    """The app, with the time of every screen refresh."""

    def __init__(self, source: LiveSource) -> None:
        super().__init__(source)
        self.refresh_times: list[float] = []

    def _refresh_views(self, new_records: bool = True) -> None:
        self.refresh_times.append(time.monotonic())
        super()._refresh_views(new_records)


async def measure(app: TimedApp) -> dict[str, float] | None:
    async with app.run_test(size=(160, 48)) as pilot:
        deadline = time.monotonic() + FIRST_RECORDS_S
        while app.stats.records == 0:
            if time.monotonic() > deadline:
                print(f"tui_load: no records after {FIRST_RECORDS_S:.0f} s: {app.source.state()}")
                return None
            await pilot.pause(0.1)
        await pilot.pause(1.0)
        d0 = app.source.lost()
        r0, n0, i0 = app.refreshes, app.stats.records, len(app.refresh_times)
        c0, u0, t0 = time.process_time(), time.thread_time(), time.monotonic()
        await pilot.pause(SECONDS)
        dt = time.monotonic() - t0
        ui = time.thread_time() - u0  # run_test runs the app in this thread: the UI thread
        cpu = time.process_time() - c0
        gaps = np.diff(app.refresh_times[i0:]) * 1000 if len(app.refresh_times) - i0 > 2 else np.zeros(1)
        return {
            "seconds": dt,
            "refreshes_per_s": (app.refreshes - r0) / dt,
            "gap_p50": float(np.percentile(gaps, 50)),
            "gap_p95": float(np.percentile(gaps, 95)),
            "gap_max": float(gaps.max()),
            "records_per_s": (app.stats.records - n0) / dt,
            "cpu_percent": 100.0 * cpu / dt,
            "ui_percent": 100.0 * ui / dt,
            "ui_ms_per_refresh": 1000.0 * ui / max(1, app.refreshes - r0),
            "records": float(app.stats.records),
            "drops": float(app.source.lost()),
            "drops_during": float(app.source.lost() - d0),
        }


def main() -> int:
    src = LiveSource.start(backend="qemu", cpus=CPUS, cmdline="storm=1")
    try:
        res = asyncio.run(measure(TimedApp(src)))
    finally:
        src.close()
    if res is None:
        return 1
    print(f"tui_load: {CPUS} CPUs, storm=1, {res['seconds']:.1f} s")
    print(f"  refreshes/s      {res['refreshes_per_s']:.1f}")
    print(
        f"  refresh interval p50 {res['gap_p50']:.0f} ms, p95 {res['gap_p95']:.0f} ms, "
        f"max {res['gap_max']:.0f} ms"
    )
    print(f"  records/s read   {res['records_per_s']:,.0f}")
    print(f"  TUI CPU          {res['cpu_percent']:.0f}% of one core (UI + poller thread)")
    print(
        f"  UI thread CPU    {res['ui_percent']:.0f}% of one core, "
        f"{res['ui_ms_per_refresh']:.1f} ms a refresh (aggregation, views, Textual's rendering)"
    )
    print(f"  records total    {res['records']:,.0f}, reader drops {res['drops']:,.0f} (with boot-to-attach)")
    print(f"  drops while measured {res['drops_during']:,.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
