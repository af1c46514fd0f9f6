"""Bochs' TSC rate in wall-clock seconds (issue 15 item 7): the hypervisor's PIT calibration finds Bochs'
nominal instruction rate (TSC and PIT both count emulated instructions), so a capture measures the real
rate against the host clock (hvtrace.trace.tsc_rate) and its spans are wall-consistent."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hvtrace.launch.bochs import IPS
from hvtrace.trace.capture import Capture
from hvtrace.trace.tracefile import TraceFile
from hvtrace.trace.tsc_rate import SOURCE

pytestmark = [pytest.mark.slow, pytest.mark.bochs]

DURATION = 20.0


def test_bochs_capture_spans_no_more_than_its_own_duration(tmp_path: Path) -> None:
    path = tmp_path / "bochs.hvt"
    with Capture.start(backend="bochs", cpus=1, cmdline="storm=1", timeout=300) as cap:
        summary = cap.record(path, duration=DURATION)
        pit_lines = [line for line in cap.hv_console if "timer: TSC" in line]
    assert summary["records"] > 1000
    # The cause, as a count: TSC ticks over 10 ms of PIT ticks are Bochs' nominal ips (5,001 kHz),
    # whatever Bochs' real speed: both clocks count emulated instructions.
    assert pit_lines, "no calibration line"
    khz = int(pit_lines[0].split("timer: TSC ")[1].split()[0])
    assert abs(khz - IPS // 1000) <= IPS // 1000 // 100
    tf = TraceFile.open(path)
    assert tf.meta["tsc_hz_source"] == SOURCE
    tsc = tf.records()["tsc"].astype(np.int64)
    span = (int(tsc.max()) - int(tsc.min())) / tf.meta["tsc_hz"]
    # Records arrive from the end of the boot to the end of the capture: their span cannot exceed
    # the capture's duration. At the PIT rate it was 2-9x longer (40.2 s for this 20 s capture).
    assert 0 < span <= DURATION * 1.05, span
    assert span > (int(tsc.max()) - int(tsc.min())) / (IPS * 20)  # and not absurdly short either
