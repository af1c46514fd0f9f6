"""ArrivalClock: Bochs' TSC rate against the host clock, from when records arrive."""

from __future__ import annotations

import numpy as np

from hvtrace.trace.records import RECORD_DTYPE
from hvtrace.trace.tsc_rate import MIN_SPAN_S, ArrivalClock


def batch(*tscs: int) -> np.ndarray:
    recs = np.zeros(len(tscs), RECORD_DTYPE)
    recs["tsc"] = tscs
    return recs


def test_rate_is_the_newest_tsc_over_host_time_between_first_and_latest_batch() -> None:
    clock = ArrivalClock()
    clock.observe(batch(10, 1_000_000), now=100.0)  # a backlog: only its newest record counts
    clock.observe(batch(), now=101.0)  # nothing arrived: no point
    assert clock.rate() is None  # one point is no rate
    clock.observe(batch(2_000_000, 15_000_000), now=102.0)
    assert clock.rate() == 7_000_000  # 14 M ticks in 2 s
    clock.observe(batch(14_000_000), now=103.0)  # older than the latest point (another CPU): ignored
    assert clock.rate() == 7_000_000


def test_no_rate_before_a_minimum_span() -> None:
    clock = ArrivalClock()
    clock.observe(batch(0, 1), now=5.0)
    clock.observe(batch(1000), now=5.0 + MIN_SPAN_S / 2)
    assert clock.rate() is None
    clock.observe(batch(3000), now=5.0 + MIN_SPAN_S * 2)
    assert clock.rate() == round(2999 / (MIN_SPAN_S * 2))
