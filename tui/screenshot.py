"""Write the README's screenshot: ``python -m hvtrace.tui.screenshot docs/tui.svg``.

Boots the CPUID storm guest on 2 CPUs under QEMU, lets the TUI run a few seconds headless (Textual's
run_test), then saves Textual's SVG export of the screen.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from .app import HvTraceApp
from .sources import LiveSource


async def _shoot(app: HvTraceApp, out: Path, seconds: float) -> None:
    async with app.run_test(size=(160, 44)) as pilot:
        await pilot.pause(seconds)
        await pilot.press("enter")  # drill into the top reason
        await pilot.pause(0.5)
        out.write_text(app.export_screenshot(title="hvtrace tui"))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0] if args else "docs/tui.svg")
    src = LiveSource.start(backend="qemu", cpus=2, cmdline="storm=1")
    try:
        asyncio.run(_shoot(HvTraceApp(src), out, 6.0))
    finally:
        src.close()
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
