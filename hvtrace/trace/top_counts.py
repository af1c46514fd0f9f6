"""What `hvtrace top` shows: the exits of one interval counted per CPU and per reason (numpy, never per
record in Python), as a kvm_stat-style table or one log line."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from hvtrace.decode.vendor import reason_name
from hvtrace.trace.records import Records


@dataclass
class Interval:
    """The exits counted over one interval of ``seconds``."""

    vendor: int
    seconds: float = 0.0
    per_cpu: Counter[int] = field(default_factory=Counter)
    per_reason: Counter[int] = field(default_factory=Counter)
    #: The first and last exit TSC seen (all CPUs), 0 when there was none.
    tsc_first: int = 0
    tsc_last: int = 0
    lost: int = 0

    def add(self, recs: Records) -> None:
        if not len(recs):
            return
        for key, column in ((self.per_cpu, "cpu"), (self.per_reason, "reason")):
            values, counts = np.unique(recs[column], return_counts=True)
            key.update(dict(zip(values.tolist(), counts.tolist(), strict=True)))
        tsc = recs["tsc"]
        first, last = int(tsc.min()), int(tsc.max())
        self.tsc_first = first if not self.tsc_first else min(self.tsc_first, first)
        self.tsc_last = max(self.tsc_last, last)

    @property
    def total(self) -> int:
        return sum(self.per_cpu.values())

    def rate(self, n: int) -> float:
        return n / self.seconds if self.seconds > 0 else 0.0

    def reasons(self) -> list[tuple[str, int]]:
        """(name, count) for every reason seen, most frequent first (then by name)."""
        named = [(reason_name(self.vendor, r), n) for r, n in self.per_reason.items()]
        return sorted(named, key=lambda rn: (-rn[1], rn[0]))

    def cpus(self) -> list[tuple[int, int]]:
        """(cpu, count), busiest first (then by CPU number)."""
        return sorted(self.per_cpu.items(), key=lambda cn: (-cn[1], cn[0]))


def table(iv: Interval, *, cpus: int, vendor_name: str) -> list[str]:
    """The kvm_stat-style view of one interval: a header, per-CPU and per-reason counts and rates."""
    lines = [
        f"hvtrace top: {cpus} CPUs ({vendor_name}), interval {iv.seconds:.2f} s, "
        f"{iv.total} exits, {iv.rate(iv.total):,.0f}/s, lost {iv.lost}",
        f"window: tsc {iv.tsc_first}..{iv.tsc_last}",
        "",
        f"{'CPU':<20} {'exits':>10} {'exits/s':>12} {'%':>6}",
    ]
    total = max(iv.total, 1)
    for cpu, n in iv.cpus():
        lines.append(f"{cpu:<20} {n:>10} {iv.rate(n):>12,.0f} {100 * n / total:>6.1f}")
    lines += ["", f"{'REASON':<20} {'exits':>10} {'exits/s':>12} {'%':>6}"]
    for name, n in iv.reasons():
        lines.append(f"{name:<20} {n:>10} {iv.rate(n):>12,.0f} {100 * n / total:>6.1f}")
    return lines


def log_line(iv: Interval, stamp: str) -> str:
    """One line per interval for logs: time, total, then per CPU and per reason, busiest first."""
    parts = [stamp, f"total={iv.total}", f"rate={iv.rate(iv.total):.0f}/s", f"lost={iv.lost}"]
    parts += [f"cpu{cpu}={n}" for cpu, n in iv.cpus()]
    parts += [f"{name}={n}" for name, n in iv.reasons()]
    return " ".join(parts)
