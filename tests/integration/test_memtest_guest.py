"""Debian's memtest86+ (memtest86+x64.bin, fetched with apt like the Linux guest): a bzImage that is
not relocatable, so the hypervisor loads it at its code32_start, 1 MiB, over where QEMU put the
modules (moved high first). It runs under the hypervisor and draws its screen on COM1 (cursor
escapes, no newline: the launcher shows it with the timeout report). memtest86+ never ends a run by itself:
`hvtrace run --timeout` stops it."""

from __future__ import annotations

import re

import pytest

from hvtrace.guest_assets import fetch_memtest
from tests.integration.conftest import RunFn, assert_clean

pytestmark = [pytest.mark.slow, pytest.mark.qemu]

BANNER = re.compile(r"Memtest86\+ v\d+\.\d+")


def test_memtest86plus_loads_at_1m_and_runs_under_qemu(hvtrace_run: RunFn) -> None:
    memtest = fetch_memtest()
    run = hvtrace_run(
        "run", "--guest", str(memtest), "--append", "console=ttyS0,115200 nopause", "--timeout", "90"
    )
    assert run.returncode == 124, run.describe()  # stopped by the timeout: memtest86+ kept testing
    assert "not a relocatable kernel" not in run.stdout
    assert re.search(
        r"^guest: Linux kernel .*memtest86\+x64\.bin .*loaded at \[0x100000-", run.stdout, re.M
    ), run.describe()
    assert "guest: CPU 0 enters the guest at 0x100000" in run.stdout
    assert re.search(r"^guest: module 0 moved from 0x[0-9a-f]+ to 0x[0-9a-f]+", run.stdout, re.M), run.stdout
    # its own screen, drawn from 1 MiB (the unterminated console tail comes with the timeout report)
    assert BANNER.search(run.stdout + run.stderr), run.describe()
    assert_clean(run)
