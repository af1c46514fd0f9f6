"""Overflow on real QEMU: a tiny ring under a CPUID storm and a deliberately slow reader.

Drops and overwrites are counted exactly and no torn or out-of-order record is ever accepted.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from hvtrace.abi import HvExitKind
from hvtrace.launch.qemu import QemuSession
from hvtrace.paths import image_path
from hvtrace.trace.discovery import discover
from hvtrace.trace.reader import RingReader
from hvtrace.trace.sources import SharedRamSource

pytestmark = [pytest.mark.slow, pytest.mark.qemu]


def slow_read(policy: str) -> tuple[RingReader, list[np.ndarray], int]:
    batches: list[np.ndarray] = []
    with QemuSession(cpus=1, memory_mb=64, cmdline=f"storm=1 ring=64 ring_policy={policy}", timeout=60) as s:
        deadline = time.monotonic() + 30
        while not any(line.startswith("storm:") for line in s.lines):
            assert time.monotonic() < deadline, s.lines[-5:]
            time.sleep(0.05)
        assert s.ram_path is not None
        with SharedRamSource(s.ram_path) as ram:
            disc = discover(ram, elf=image_path())
            reader = RingReader(ram, disc.rings[0])
            for _ in range(8):
                time.sleep(0.1)  # ≈10k exits per pause against a 64-record ring
                batches.append(reader.poll())
            final_head = reader.head()
            reader.poll()
    # The storm never stops by itself: leaving the session killed QEMU; the counts are from before.
    return reader, batches, final_head


def assert_untorn(batches: list[np.ndarray]) -> None:
    recs = np.concatenate(batches)
    assert len(recs) > 0
    assert (np.diff(recs["seq"].astype(np.int64)) > 0).all()  # strictly increasing, never repeated
    assert (recs["cpu"] == 0).all()


def test_overwrite_ring_counts_every_lost_record() -> None:
    reader, batches, head = slow_read("overwrite")
    assert_untorn(batches)
    st = reader.stats
    assert head > 10 * 64  # the producer lapped the ring many times
    assert st.overwritten > 0
    recs = np.concatenate(batches)
    assert (recs["kind"] == int(HvExitKind.CPUID)).all()  # long past the self-test: only the storm's CPUID
    assert (recs["arg0"] < 8).all()  # ... with leaves 0..7 (boot/guests/storm.c)
    # Every sequence number the producer published up to where we stopped is either accepted or counted.
    assert st.consumed + st.overwritten == reader.next_seq - 1


def test_drop_newest_ring_counts_drops_exactly() -> None:
    reader, batches, head = slow_read("drop")
    assert_untorn(batches)
    st = reader.stats
    assert head == 64  # drops do not advance head
    # Without a consumer tail the producer fills the ring once (with the self-test's first 64 exits) and
    # drops everything after: the reader sees exactly those 64 records and the ring's own drop counter.
    assert st.consumed == 64
    assert st.dropped > 10 * 64
    recs = np.concatenate(batches)
    assert (recs["seq"] == np.arange(1, 65)).all()
