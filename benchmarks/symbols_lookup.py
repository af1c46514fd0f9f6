"""Guest symbols: load time of a System.map-sized table, and RIP -> symbol+0xoff per record (the export
column and the report's locations: one lookup per distinct RIP), one run. No asserts: numbers for notes.

A synthetic System.map of SYMBOLS functions; N records whose RIPs fall on DISTINCT different addresses
(a boot capture has a few thousand; a storm a handful)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from hvtrace.kaslr import find_slide
from hvtrace.symbols import load
from hvtrace.trace.records import RECORD_DTYPE

SYMBOLS = 100_000
N = 2_000_000
DISTINCT = 5_000
BASE = 0xFFFF_FFFF_8100_0000
SLIDE = 0x1E00000


def main() -> None:
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "System.map"
        addrs = BASE + np.sort(rng.choice(1 << 25, SYMBOLS, replace=False)).astype(np.uint64) * 16
        names = [f"fn_{i}" if i != 7 else "native_cpuid" for i in range(SYMBOLS)]
        path.write_text("".join(f"{int(a):016x} t {n}\n" for a, n in zip(addrs.tolist(), names, strict=True)))
        t0 = time.perf_counter()
        table = load(path)
        t_load = time.perf_counter() - t0
    recs = np.zeros(N, RECORD_DTYPE)
    pool = addrs[rng.integers(0, SYMBOLS, DISTINCT)] + np.uint64(SLIDE) + np.uint64(3)
    recs["rip"] = pool[rng.integers(0, DISTINCT, N)]
    recs["kind"] = 1
    recs["rip"][:50] = addrs[7] + np.uint64(SLIDE) + np.arange(50, dtype=np.uint64) % np.uint64(5)
    t0 = time.perf_counter()
    slide = find_slide(table, recs)
    t_slide = time.perf_counter() - t0
    table.slide = SLIDE
    t0 = time.perf_counter()
    col = table.names_of(recs["rip"])
    t_col = time.perf_counter() - t0
    print(f"load {SYMBOLS:,} symbols: {t_load:.2f} s")
    print(f"slide search over {N:,} records: {t_slide:.2f} s ({slide.line() if slide else 'none'})")
    print(
        f"symbol column for {N:,} records ({DISTINCT:,} distinct RIPs): {t_col:.2f} s, "
        f"{N / t_col:,.0f} records/s"
    )
    print(f"sample: {col[0]}")


if __name__ == "__main__":
    main()
