"""The TSC rate in wall-clock seconds when the hypervisor cannot measure it: under Bochs.

Bochs (``clock: sync=none``, hvtrace.launch.bochs) drives its TSC and its PIT from one clock, the count
of emulated instructions at a nominal ``ips``: the hypervisor's PIT calibration (hv/core/cpu/timer.c)
therefore finds exactly that nominal rate (5,001 kHz for ips=5,000,000), while Bochs really executes
several times more instructions per second (measured: 14-47 M/s on this project's machines, varying
with load). Spans in "seconds" of that rate came out 3-9x too long (a 5 s capture spanned 46.8 s).
``sync=realtime`` is no cure: the PIT then follows the host clock in catch-up jumps while the TSC
still counts instructions (measured: calibrated 1,253 kHz against 18 M ticks per real second), and
``sync=slowdown`` would cap Bochs at ``ips``. So the host measures the rate: the newest record's TSC
against the host clock when it arrives, over the capture (records reach us within a buffer-fill of
being written). :class:`ArrivalClock` holds the two ends.
"""

from __future__ import annotations

import time

from hvtrace.trace.records import Records

#: Shortest arrival span that gives a rate (buffering jitter is tens of milliseconds).
MIN_SPAN_S = 1.0
SOURCE = "host clock against record arrival (Bochs: its TSC counts emulated instructions)"
PIT_SOURCE = "hypervisor PIT calibration"
#: A Bochs capture too short to measure (records within MIN_SPAN_S) keeps the PIT's rate, said to be so.
PIT_EMULATED_SOURCE = "hypervisor PIT calibration (Bochs: emulated time at its nominal ips, not wall time)"


class ArrivalClock:
    """(host time, newest TSC) when the first and the latest batch of records arrived."""

    def __init__(self) -> None:
        self.first: tuple[float, int] | None = None
        self.last: tuple[float, int] | None = None

    def observe(self, recs: Records, now: float | None = None) -> None:
        if not len(recs):
            return
        point = (time.monotonic() if now is None else now, int(recs["tsc"].max()))
        if self.first is None:
            self.first = point
        elif self.last is None or point[1] > self.last[1]:
            self.last = point

    def rate(self) -> int | None:
        """TSC ticks per host second, once records have arrived over MIN_SPAN_S; else None."""
        if self.first is None or self.last is None:
            return None
        seconds = self.last[0] - self.first[0]
        ticks = self.last[1] - self.first[1]
        if seconds < MIN_SPAN_S or ticks <= 0:
            return None
        return round(ticks / seconds)
