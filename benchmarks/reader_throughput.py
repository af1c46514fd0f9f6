"""Records/s of the vectorised RingReader vs a naive per-record ctypes loop, on the same ring, one run.

A ring of CAPACITY records in a file (the layout of abi.h, as the hypervisor publishes it) is read in
full ROUNDS times by each reader; prints both rates and their ratio. No asserts: numbers for the notes.
"""

from __future__ import annotations

import ctypes
import struct
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from hvtrace.abi import HvRecord, HvRing, HvRingPolicy
from hvtrace.trace.reader import RING_HEADER, RingReader
from hvtrace.trace.records import RECORD_DTYPE
from hvtrace.trace.sources import SharedRamSource

CAPACITY = 1 << 16
ROUNDS = 20


def make_ring(path: Path) -> None:
    recs = np.zeros(CAPACITY, RECORD_DTYPE)
    recs["seq"] = np.arange(1, CAPACITY + 1)
    recs["tsc"] = np.arange(CAPACITY) * 100
    recs["kind"] = 1
    hdr = HvRing(head=CAPACITY, capacity=CAPACITY, policy=HvRingPolicy.OVERWRITE, enabled=1)
    path.write_bytes(bytes(hdr) + recs.tobytes())


def naive(src: SharedRamSource) -> int:
    """Per record: read seq, copy with ctypes, re-read seq — the protocol without numpy."""
    n = 0
    for seq in range(1, CAPACITY + 1):
        off = RING_HEADER + ((seq - 1) % CAPACITY) * 64
        before = struct.unpack("<Q", src.read(off, 8))[0]
        rec = HvRecord.from_buffer_copy(src.read(off, 64))
        after = struct.unpack("<Q", src.read(off, 8))[0]
        if before == after == rec.seq == seq:
            n += 1
    return n


def main() -> int:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "ring.bin"
        make_ring(path)
        with SharedRamSource(path) as src:
            t = time.perf_counter()
            total = 0
            for _ in range(ROUNDS):
                r = RingReader(src, 0)
                r.next_seq = 1
                r.stats.overwritten = 0
                total += len(r.poll())
            vec = total / (time.perf_counter() - t)
            t = time.perf_counter()
            total = naive(src)
            slow = total / (time.perf_counter() - t)
    print(f"ring of {CAPACITY} records ({ctypes.sizeof(HvRecord)} B each)")
    print(f"vectorised RingReader : {vec:>14,.0f} records/s")
    print(f"naive ctypes loop     : {slow:>14,.0f} records/s")
    print(f"ratio                 : {vec / slow:>14,.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
