"""RingReader against the hypervisor's own producer (hv/core/ring.c built for the host, publishing into a
shared file while we read it live), plus a hypothesis property test of interleavings.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hvtrace.abi import HV_RECORD_SIZE, HvReader, HvRing, HvRingPolicy
from hvtrace.trace.reader import RING_HEADER, RingReader
from hvtrace.trace.records import RECORD_DTYPE, Records
from hvtrace.trace.sources import SharedRamSource

NATIVE = Path(__file__).resolve().parents[1] / "native"
needs_gcc = pytest.mark.skipif(
    shutil.which("gcc") is None or shutil.which("make") is None, reason="needs gcc, make"
)


@pytest.fixture(scope="module")
def producer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("native")
    build = subprocess.run(
        ["make", "-C", str(NATIVE), f"O={out}", "ring_producer"], capture_output=True, text=True, check=False
    )
    assert build.returncode == 0, build.stdout + build.stderr
    return out / "ring_producer"


def mix(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.uint64)
    x ^= x >> np.uint64(33)
    x *= np.uint64(0xFF51AFD7ED558CCD)
    x ^= x >> np.uint64(33)
    return x


def assert_untorn(recs: Records) -> None:
    """Every field of every accepted record comes from the same publication (ring_producer.c payload)."""
    i = recs["arg0"]
    m = mix(i)
    assert (recs["tsc"] == i).all()
    assert (recs["qual"] == m).all()
    assert (recs["rip"] == m ^ np.uint64(0x5555555555555555)).all()
    assert (recs["gpa"] == ~m).all()
    assert (recs["arg1"] == m + i).all()


def run_live(
    producer: Path,
    tmp: Path,
    *,
    cap: int,
    policy: int,
    count: int,
    rate: int,
    lossless: bool,
    pause: float = 0.0,
    wait_ticks: int = 0,
    attach_after: float | None = None,
) -> tuple[RingReader, Records, str]:
    """Run ring_producer against a live reader. ``attach_after``: the producer starts at once and the
    reader attaches that many seconds later (default: the producer starts once the reader is attached)."""
    ring = tmp / "ring.bin"
    proc = subprocess.Popen(
        [str(producer), str(ring), str(cap), str(policy), str(count), str(rate), "0", str(wait_ticks)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={} if attach_after is not None else {"GO": "1"},
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        if attach_after is not None:
            time.sleep(attach_after)
        with SharedRamSource(ring) as src:
            reader = RingReader(src, 0, lossless=lossless)
            assert proc.stdin is not None
            proc.stdin.write("g")  # attached: start publishing (GO=1)
            proc.stdin.close()
            got: list[Records] = []
            while True:
                running = proc.poll() is None
                batch = reader.poll()
                if len(batch):
                    got.append(batch)
                elif not running:
                    break
                if pause:
                    time.sleep(pause)
            out = proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    recs = np.concatenate(got) if got else np.empty(0, RECORD_DTYPE)
    return reader, recs, out


@needs_gcc
def test_lossless_consumer_tail_keeps_every_record(producer: Path, tmp_path: Path) -> None:
    reader, recs, out = run_live(
        producer,
        tmp_path,
        cap=1 << 20,  # 7 s of headroom at this rate: "while the host keeps up" even on a loaded machine
        policy=HvRingPolicy.DROP_NEWEST,
        count=300_000,
        rate=150_000,
        lossless=True,
    )
    assert out.startswith("published 300000 dropped 0"), out
    assert len(recs) == 300_000
    assert (recs["seq"] == np.arange(1, 300_001)).all()
    assert_untorn(recs)
    assert reader.stats.lost == 0


@needs_gcc
def test_passive_reader_of_a_drop_newest_ring_counts_drops_exactly(producer: Path, tmp_path: Path) -> None:
    reader, recs, out = run_live(
        producer, tmp_path, cap=64, policy=HvRingPolicy.DROP_NEWEST, count=100_000, rate=0, lossless=False
    )
    published, dropped = int(out.split()[1]), int(out.split()[3])
    assert published + dropped == 100_000
    assert reader.stats.dropped == dropped
    assert len(recs) == published == 64  # without the tail the producer fills the ring once, then drops
    assert_untorn(recs)


@needs_gcc
def test_slow_reader_of_an_overwrite_ring_counts_losses_and_never_accepts_a_torn_record(
    producer: Path, tmp_path: Path
) -> None:
    reader, recs, out = run_live(
        producer,
        tmp_path,
        cap=16,
        policy=HvRingPolicy.OVERWRITE,
        count=400_000,
        rate=2_000_000,
        lossless=False,
    )
    assert out.startswith("published 400000 dropped 0"), out
    assert reader.stats.overwritten > 0
    assert len(recs) + reader.stats.overwritten == 400_000  # exact: every sequence number accounted for
    assert (np.diff(recs["seq"].astype(np.int64)) > 0).all()
    assert (recs["seq"] == recs["arg0"]).all()
    assert_untorn(recs)


# 1 << 40 TSC ticks: minutes at any TSC rate, i.e. "the reader comes" for these tests.
FOREVER = 1 << 40


@needs_gcc
def test_tracing_waits_for_its_reader_and_loses_nothing(producer: Path, tmp_path: Path) -> None:
    # The producer fills its 64 slots long before the reader attaches; with a wait it holds the CPU
    # instead of dropping (drop-newest) or overwriting (overwrite, the policy for nobody reading).
    reader, recs, out = run_live(
        producer, tmp_path, cap=64, policy=HvRingPolicy.OVERWRITE, count=50_000, rate=0,
        lossless=True, wait_ticks=FOREVER, attach_after=0.3,
    )  # fmt: skip
    assert out.startswith("published 50000 dropped 0"), out
    assert (recs["seq"] == np.arange(1, 50_001)).all()
    assert_untorn(recs)
    assert reader.stats.lost == 0
    assert reader.stats.waited_ticks > 0  # it did wait: 0.3 s with a full ring


@needs_gcc
def test_a_wait_that_runs_out_drops_counted_as_unread_and_never_waits_again(
    producer: Path, tmp_path: Path
) -> None:
    ring = tmp_path / "ring.bin"
    args = [str(producer), str(ring), "64", str(int(HvRingPolicy.DROP_NEWEST)), "10000", "0", "3", "1000"]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout  # no reader ever comes
    assert "published 64 dropped 9936" in out, out
    hdr = HvRing.from_buffer_copy(ring.read_bytes()[:RING_HEADER])
    assert hdr.wait_expired == 1
    assert hdr.dropped_unread == hdr.dropped == 9936  # all while no reader was attached
    assert hdr.cpu == 3
    # One wait of ~1000 ticks, not one per drop: the first timeout ends waiting for good.
    assert hdr.waited_ticks < 9936 * 1000


@needs_gcc
def test_an_attached_reader_is_never_overwritten_and_its_losses_count_as_behind(
    producer: Path, tmp_path: Path
) -> None:
    # Overwrite policy, no wait: the attached reader that never polls still keeps the first 64 records;
    # the rest are dropped with a reader attached (lost_read), none while unread.
    ring = tmp_path / "ring.bin"
    proc = subprocess.Popen(
        [str(producer), str(ring), "64", str(int(HvRingPolicy.OVERWRITE)), "5000", "0"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env={"GO": "1"},
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        assert proc.stdin is not None
        assert proc.stdout.readline().strip() == "ready"
        with SharedRamSource(ring) as src:
            reader = RingReader(src, 0, lossless=True)
            proc.stdin.write("g")
            proc.stdin.close()
            assert "published 64 dropped 4936" in proc.stdout.read()
            recs = reader.poll()
            reader.detach()
            assert HvRing.from_buffer_copy(src.read(0, RING_HEADER)).reader == HvReader.LEFT
    finally:
        proc.kill()
        proc.wait()
    assert (recs["seq"] == np.arange(1, 65)).all()
    assert reader.stats.lost_read == 4936
    assert reader.stats.lost_unread == 0


# ---------------------------------------------------------------- property test: adversarial interleavings
class SteppedRing:
    """A ring in a bytearray and a producer that follows ring.c's store order one store at a time; every
    read by the reader lets the producer take ``steps`` stores first (so it can tear a copy mid-way)."""

    def __init__(self, cap: int, policy: int, schedule: list[int]) -> None:
        self.cap, self.policy = cap, policy
        self.mem = bytearray(RING_HEADER + cap * HV_RECORD_SIZE)
        hdr = HvRing.from_buffer(self.mem)
        hdr.capacity, hdr.policy, hdr.enabled = cap, policy, 1
        del hdr
        self.schedule = schedule
        self.reads = 0
        self.pending: list[tuple[str, int]] = []
        self.attempt = 0
        self.published = 0
        self.dropped = 0
        self.dropped_unread = 0
        self.attempts_at_attach = 0
        self.name = "stepped ring"

    def _u64(self, off: int, value: int | None = None) -> int:
        view = (ctypes.c_uint64).from_buffer(self.mem, off)
        if value is not None:
            view.value = value
        return int(view.value)

    def _store(self) -> None:
        if not self.pending:
            self.attempt += 1
            head, tail = self._u64(0), self._u64(64)
            attached = self.mem[HvRing.reader.offset] == HvReader.ATTACHED
            if (self.policy == HvRingPolicy.DROP_NEWEST or attached) and head - tail >= self.cap:
                self.dropped += 1  # ring.c: bounded by the tail (no wait configured): drop the newest
                self._u64(HvRing.dropped.offset, self.dropped)
                if not attached:
                    self.dropped_unread += 1
                    self._u64(HvRing.dropped_unread.offset, self.dropped_unread)
                return
            slot = RING_HEADER + (head % self.cap) * HV_RECORD_SIZE
            fields = [(f"field{k}", slot) for k in range(1, HV_RECORD_SIZE // 8)]
            self.pending = [("seq0", slot), *fields, ("seq", slot), ("head", head + 1)]
        op, arg = self.pending.pop(0)
        if op == "seq0":
            self._u64(arg, 0)
        elif op.startswith("field"):
            k = int(op[5:])
            self._u64(arg + 8 * k, self.attempt * 1000 + k)
        elif op == "seq":
            self._u64(arg, self._u64(0) + 1)
        else:
            self._u64(0, arg)
            self.published += 1

    def read(self, paddr: int, n: int) -> bytes:
        steps = self.schedule[self.reads % len(self.schedule)]
        self.reads += 1
        for _ in range(steps):
            self._store()
        return bytes(self.mem[paddr : paddr + n])

    def write(self, paddr: int, data: bytes) -> None:
        self.mem[paddr : paddr + len(data)] = data
        if paddr == HvRing.reader.offset and data[0] == HvReader.ATTACHED:
            self.attempts_at_attach = self.attempt

    def alive(self) -> bool:
        return True


@settings(max_examples=150, deadline=None)
@given(
    cap=st.sampled_from([1, 2, 4, 16]),
    policy=st.sampled_from([HvRingPolicy.DROP_NEWEST, HvRingPolicy.OVERWRITE]),
    lossless=st.booleans(),
    schedule=st.lists(st.integers(0, 40), min_size=1, max_size=12),
    polls=st.integers(1, 40),
)
def test_property_no_torn_record_and_exact_loss_accounting(
    cap: int, policy: int, lossless: bool, schedule: list[int], polls: int
) -> None:
    ring = SteppedRing(cap, policy, schedule)
    reader = RingReader(ring, 0, lossless=lossless)
    got = [reader.poll() for _ in range(polls)]
    ring.schedule = [0]  # producer stops (mid-record at worst); the reader drains
    while ring.pending:
        ring._store()
    got.append(reader.poll())
    recs = np.concatenate(got)
    # untorn: every field of an accepted record belongs to its own attempt
    for k, name in enumerate(("tsc", "cpu_kind_flags", "qual", "rip", "gpa", "arg0", "arg1"), start=1):
        if name == "cpu_kind_flags":
            continue
        att = recs[name] // 1000
        assert (recs[name] % 1000 == k).all()
        assert (att == recs["tsc"] // 1000).all()
    assert (np.diff(recs["seq"].astype(np.int64)) > 0).all()
    # exact accounting: every attempt is consumed, dropped by the producer, or overwritten
    assert len(recs) + reader.stats.overwritten == ring.published
    assert reader.stats.dropped == ring.dropped
    assert reader.stats.dropped_unread == ring.dropped_unread
    if policy == HvRingPolicy.DROP_NEWEST:
        assert reader.stats.overwritten == 0
    if lossless:  # once attached, records are never overwritten: only those from before can be
        assert reader.stats.overwritten <= ring.attempts_at_attach
