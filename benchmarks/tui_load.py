"""TUI load while the CPUID storm runs: CPU use of the TUI process, refresh rate, records/s, drops.

Boots QEMU (SVM under TCG, storm=1) on CPUS CPUs, runs the TUI headless (Textual run_test, so the
screen is still composed and rendered) for SECONDS, and prints the numbers. No asserts.
"""

from __future__ import annotations

import asyncio
import sys
import time

from hvtrace.tui.app import HvTraceApp
from hvtrace.tui.sources import LiveSource

CPUS = int(sys.argv[1]) if len(sys.argv) > 1 else 2
SECONDS = float(sys.argv[2]) if len(sys.argv) > 2 else 10.0


async def measure(app: HvTraceApp) -> dict[str, float]:
    async with app.run_test(size=(160, 48)) as pilot:
        while app.stats.records == 0:
            await pilot.pause(0.1)
        await pilot.pause(1.0)
        d0 = app.source.lost()
        r0, n0, c0, t0 = app.refreshes, app.stats.records, time.process_time(), time.monotonic()
        await pilot.pause(SECONDS)
        dt = time.monotonic() - t0
        return {
            "seconds": dt,
            "refreshes_per_s": (app.refreshes - r0) / dt,
            "records_per_s": (app.stats.records - n0) / dt,
            "cpu_percent": 100.0 * (time.process_time() - c0) / dt,
            "records": float(app.stats.records),
            "drops": float(app.source.lost()),
            "drops_during": float(app.source.lost() - d0),
        }


def main() -> int:
    src = LiveSource.start(backend="qemu", cpus=CPUS, cmdline="storm=1")
    try:
        res = asyncio.run(measure(HvTraceApp(src)))
    finally:
        src.close()
    print(f"tui_load: {CPUS} CPUs, storm=1, {res['seconds']:.1f} s")
    print(f"  refreshes/s      {res['refreshes_per_s']:.1f}")
    print(f"  records/s read   {res['records_per_s']:,.0f}")
    print(f"  TUI CPU          {res['cpu_percent']:.0f}% of one core (UI + poller thread)")
    print(f"  records total    {res['records']:,.0f}, reader drops {res['drops']:,.0f} (with boot-to-attach)")
    print(f"  drops while measured {res['drops_during']:,.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
