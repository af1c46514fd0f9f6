"""RingReader: one CPU's exit ring (abi.h struct hv_ring), read while the producer runs.

Protocol (hv/core/ring.c): the producer writes slot.seq = 0, the fields, slot.seq = n, then head = n.
The reader reads head, copies the slots of the sequence numbers it has not consumed yet in one bulk
copy, then re-reads their seq fields. A record n is accepted only if its copied seq and the re-read
seq are both n: a slot the producer started rewriting reads 0 or n + capacity, never n again. All of
it is vectorised over the batch.

Losses, counted exactly per CPU:
- ``dropped``: records the producer refused because the ring was full (the ring's own ``dropped``
  counter, read from its header); ``dropped_unread`` of them while no reader was attached.
- ``overwritten``: records the producer overwrote before we copied them (overwrite policy, which
  applies only while no lossless reader is attached), either because head ran more than a ring ahead
  of us or because the slot's seq moved past n.
- ``torn``: the subset of ``overwritten`` caught mid-copy (seq matched in the copy but not after).
Lossless mode attaches: it writes ``tail`` and then ``reader`` = ATTACHED in the ring header, so the
producer never overwrites what we have not read (it waits for us when the session was started with
``ring_wait``, else drops), writes ``tail`` after each batch, and :meth:`RingReader.detach` writes
``reader`` = LEFT (the ring goes back to its policy for nobody reading: abi.h struct hv_ring).
"""

from __future__ import annotations

import ctypes
import struct
from dataclasses import dataclass

import numpy as np

from hvtrace.abi import HV_MAX_CPUS, HV_RECORD_SIZE, HvReader, HvRing, HvRingPolicy
from hvtrace.decode.record_meaning import capacity_problem, ring_slot
from hvtrace.exitcodes import ExitCode
from hvtrace.trace.discovery import Discovery
from hvtrace.trace.errors import TraceError
from hvtrace.trace.records import RECORD_DTYPE, Records, empty
from hvtrace.trace.sources import MemorySource, ViewSource, WritableSource

RING_HEADER = ctypes.sizeof(HvRing)
_HEAD = HvRing.head.offset
_TAIL = HvRing.tail.offset
_READER = HvRing.reader.offset
_DROPPED = HvRing.dropped.offset
_COUNTERS = (_DROPPED, HvRing.reserved2.offset + 4)  # the producer's line: dropped .. reserved2


def parse_ring_header(data: bytes, paddr: int, what: str) -> HvRing:
    """Validate a ring header's bytes (abi.h struct hv_ring): capacity a power of two the reader can
    hold, a CPU number below HV_MAX_CPUS, a known policy. Anything else is one TraceError(BAD_DATA)."""
    if len(data) < RING_HEADER:
        raise TraceError(ExitCode.BAD_DATA, f"{what}: truncated ring header at {paddr:#x}")
    hdr = HvRing.from_buffer_copy(data[:RING_HEADER])
    problem = capacity_problem(int(hdr.capacity))
    if problem:
        raise TraceError(ExitCode.BAD_DATA, f"{what}: ring at {paddr:#x} has {problem}")
    if hdr.cpu >= HV_MAX_CPUS:
        raise TraceError(ExitCode.BAD_DATA, f"{what}: ring at {paddr:#x} has bad CPU {hdr.cpu}")
    if hdr.policy not in {int(p) for p in HvRingPolicy}:
        raise TraceError(ExitCode.BAD_DATA, f"{what}: ring at {paddr:#x} has unknown policy {hdr.policy}")
    return hdr


@dataclass
class RingStats:
    cpu: int
    consumed: int = 0  # records accepted
    dropped: int = 0  # producer-side drops (ring full)
    dropped_unread: int = 0  # of which while no reader was attached
    overwritten: int = 0  # records overwritten before we read them (only while no reader is attached)
    torn: int = 0  # of which caught mid-copy
    waited_ticks: int = 0  # TSC ticks the producer spent waiting for its reader

    @property
    def lost(self) -> int:
        return self.dropped + self.overwritten

    @property
    def lost_unread(self) -> int:
        """Lost while no reader was attached: before the reader came (or after it left)."""
        return self.dropped_unread + self.overwritten

    @property
    def lost_read(self) -> int:
        """Lost while a reader was attached: it fell more than a ring behind."""
        return self.dropped - self.dropped_unread


class RingReader:
    """Reads one CPU's ring at ``paddr`` in ``source``; :meth:`poll` returns the next batch."""

    def __init__(
        self, source: MemorySource, paddr: int, *, lossless: bool = False, start: str = "oldest"
    ) -> None:
        self.source = source
        self.paddr = paddr
        hdr = parse_ring_header(source.read(paddr, RING_HEADER), paddr, source.name)
        cap = int(hdr.capacity)
        self.capacity = cap
        self.cpu = int(hdr.cpu)
        self.policy = int(hdr.policy)
        if lossless and not isinstance(source, WritableSource):
            raise TraceError(
                ExitCode.USAGE, f"{source.name} cannot be written: lossless mode needs the RAM file"
            )
        self.lossless = lossless
        self.records_paddr = paddr + RING_HEADER
        self.stats = RingStats(self.cpu)
        head = self.head()
        if start == "oldest":
            # Sequence numbers start at 1; records up to ``tail`` were consumed by an earlier reader
            # (0 if none ever attached); beyond a ring behind head they are gone (counted).
            tail = int(hdr.tail)
            self.next_seq = max(1, head - cap + 1, tail + 1)
            self.stats.overwritten = max(0, head - cap - tail)
        else:
            self.next_seq = head + 1
        # "newest": count only the drops from now on.
        self._dropped_base = (0, 0) if start == "oldest" else self._counters()[:2]
        self.attached = False
        if lossless:
            self.write_tail(self.next_seq - 1)
            self._write_reader(HvReader.ATTACHED)
            self.attached = True

    def _u64(self, off: int) -> int:
        value: int = struct.unpack("<Q", self.source.read(self.paddr + off, 8))[0]
        return value

    def head(self) -> int:
        return self._u64(_HEAD)

    def _counters(self) -> tuple[int, int, int]:
        """(dropped, dropped_unread, waited_ticks) from the producer's header line."""
        lo, hi = _COUNTERS
        hdr = HvRing.from_buffer_copy(bytes(lo) + self.source.read(self.paddr + lo, hi - lo))
        return int(hdr.dropped), int(hdr.dropped_unread), int(hdr.waited_ticks)

    def _write_reader(self, state: HvReader) -> None:
        assert isinstance(self.source, WritableSource)
        self.source.write(self.paddr + _READER, struct.pack("<I", int(state)))

    def detach(self) -> None:
        """A lossless reader leaves: the ring goes back to its policy for nobody reading."""
        if self.attached:
            self.attached = False
            self._write_reader(HvReader.LEFT)

    def _slots(self, first_slot: int, n: int) -> tuple[Records, Records]:
        """(copy of the n slots from first_slot, a live view of the same slots or a second copy)."""
        paddr = self.records_paddr + first_slot * HV_RECORD_SIZE
        nbytes = n * HV_RECORD_SIZE
        if isinstance(self.source, ViewSource):
            live = np.frombuffer(self.source.view(paddr, nbytes), dtype=RECORD_DTYPE)
            return live.copy(), live
        data = self.source.read(paddr, nbytes)
        return np.frombuffer(data, dtype=RECORD_DTYPE), np.frombuffer(
            self.source.read(paddr, nbytes), dtype=RECORD_DTYPE
        )

    def poll(self, max_records: int | None = None) -> Records:
        """Every record published since the last poll (up to ``max_records``), oldest first."""
        head = self.head()
        if head + 1 < self.next_seq:
            # The ring was re-initialised (a new run in the same memory): start over.
            self.next_seq = 1
        avail = head + 1 - self.next_seq
        if avail > self.capacity:  # overwrite policy (or a reader that fell behind a non-lossless ring)
            skipped = avail - self.capacity
            self.stats.overwritten += skipped
            self.next_seq += skipped
            avail = self.capacity
        if max_records is not None:
            avail = min(avail, max_records)
        out: list[Records] = []
        done = 0
        while done < avail:
            seq0 = self.next_seq
            slot = ring_slot(seq0, self.capacity)
            n = min(avail - done, self.capacity - slot)
            copy, live = self._slots(slot, n)
            after = live["seq"]
            expected = np.arange(seq0, seq0 + n, dtype=np.uint64)
            got = copy["seq"]
            ok = (got == expected) & (after == expected)
            if not ok.all():
                # Not published yet (a stale head in a dump): stop before the first such slot.
                unpublished = np.flatnonzero((got != 0) & (got < expected))
                if unpublished.size:
                    cut = int(unpublished[0])
                    copy, ok, got, n = copy[:cut], ok[:cut], got[:cut], cut
                bad = ~ok
                self.stats.overwritten += int(bad.sum())
                self.stats.torn += int((bad & (got == expected[: len(got)])).sum())
                copy = copy[ok]
            out.append(copy)
            self.next_seq += n
            done += n
            if n == 0:
                break
        dropped, unread, waited = self._counters()
        self.stats.dropped = dropped - self._dropped_base[0]
        self.stats.dropped_unread = unread - self._dropped_base[1]
        self.stats.waited_ticks = waited
        if self.lossless and done:
            self.write_tail(self.next_seq - 1)
        recs = out[0] if len(out) == 1 else (np.concatenate(out) if out else empty())
        self.stats.consumed += len(recs)
        return recs

    def write_tail(self, consumed: int) -> None:
        """Tell the producer we consumed every record up to sequence number ``consumed``."""
        assert isinstance(self.source, WritableSource)
        self.source.write(self.paddr + _TAIL, struct.pack("<Q", consumed))

    def policy_name(self) -> str:
        try:
            return HvRingPolicy(self.policy).name
        except ValueError:
            return f"POLICY_{self.policy}"


class RingSet:
    """A RingReader per registered CPU of a discovery header; :meth:`poll` merges their batches."""

    def __init__(self, source: MemorySource, disc: Discovery, *, lossless: bool = False) -> None:
        if not disc.rings:
            raise TraceError(
                ExitCode.NO_TRACE_HEADER,
                f"{source.name}: the hypervisor registered no rings (vendor {disc.vendor_name}: "
                "no back end is running)",
            )
        self.source = source
        self.discovery = disc
        self.readers = [
            RingReader(source, paddr, lossless=lossless) for _, paddr in sorted(disc.rings.items())
        ]

    def skip_backlog(self) -> None:
        """Read from now on: skip what the rings hold (a passive reader counting live intervals)."""
        for r in self.readers:
            r.next_seq = r.head() + 1
            r.stats.overwritten = 0
            r._dropped_base = r._counters()[:2]

    def poll(self, max_per_cpu: int | None = None) -> Records:
        batches = [r.poll(max_per_cpu) for r in self.readers]
        batches = [b for b in batches if len(b)]
        if not batches:
            return empty()
        return batches[0] if len(batches) == 1 else np.concatenate(batches)

    @property
    def stats(self) -> list[RingStats]:
        return [r.stats for r in self.readers]

    def detach(self) -> None:
        """Lossless readers leave their rings (the session may go on without a reader)."""
        for r in self.readers:
            r.detach()

    def alive(self) -> bool:
        return self.source.alive()
