"""Nothing lost from the first exit (issue 15 item 7) and the newest exits kept when nobody reads (issue 16
item 4), on real QEMU: ring policies per mode (abi.h struct hv_ring)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest

from hvtrace.abi import HvReader, HvRing, HvRingPolicy
from hvtrace.launch.qemu import QemuSession
from hvtrace.paths import image_path
from hvtrace.trace.discovery import discover
from hvtrace.trace.errors import TraceError
from hvtrace.trace.reader import RING_HEADER, RingReader, RingSet
from hvtrace.trace.sources import SharedRamSource
from hvtrace.trace.tracefile import TraceFile
from hvtrace.tui.app import HvTraceApp
from hvtrace.tui.sources import LiveSource
from hvtrace.tui.widgets import StatusBar
from tests.integration.conftest import RunFn, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.qemu]


def assert_every_exit_from_the_first(path: Path, cpus: int) -> None:
    """Each CPU's records are its ring's sequence numbers 1, 2, 3, ... without a gap."""
    tf = TraceFile.open(path)
    assert tf.lost_total() == 0
    assert tf.cpus == list(range(cpus))
    for cpu in range(cpus):
        seq = np.sort(tf.records(cpu)["seq"].astype(np.int64))
        assert len(seq) > 1000, cpu
        assert (seq == np.arange(1, len(seq) + 1)).all(), (cpu, seq[:5])


def capture_storm(hvtrace_run: RunFn, out: Path, append: str, duration: int) -> str:
    """`hvtrace capture` of a 2-CPU storm session it starts; its stdout."""
    run = hvtrace_run(
        "capture", "--backend", "qemu", "--cpus", "2", "--append", append,
        "--duration", str(duration), "-o", str(out), timeout=180,
    )  # fmt: skip
    assert run.returncode == 0, run.output
    return run.stdout


def test_capture_started_with_its_session_loses_nothing(hvtrace_run: RunFn, tmp_path: Path) -> None:
    out = tmp_path / "storm.hvt"
    assert "lost 0: lossless" in capture_storm(hvtrace_run, out, "storm=1", 10)
    assert "ring_wait=30" in TraceFile.open(out).meta["cmdline"].split()  # what the session was given
    assert_every_exit_from_the_first(out, 2)


def test_without_the_wait_the_same_capture_loses_and_says_where(hvtrace_run: RunFn, tmp_path: Path) -> None:
    # The control: a small ring that does not wait loses the self-test's exits before the reader attaches.
    out = tmp_path / "storm.hvt"
    assert "while no reader was attached" in capture_storm(hvtrace_run, out, "storm=1 ring_wait=0 ring=16", 3)
    assert TraceFile.open(out).lost_total() > 0


def test_tui_started_with_its_session_shows_no_drops() -> None:
    src = LiveSource.start(backend="qemu", cpus=2, memory_mb=64, cmdline="storm=1")

    async def scenario() -> None:
        app = HvTraceApp(src, log_capacity=50_000)
        async with app.run_test(size=(160, 48)) as pilot:
            deadline = time.monotonic() + 90
            while app.stats.records < 40_000:  # past the 2 x 8192-record rings of a 64 MiB guest
                assert time.monotonic() < deadline, app.stats.records
                await pilot.pause(0.1)
            await pilot.pause(0.3)
            assert src.lost() == 0
            assert "drops 0" in str(app.query_one(StatusBar).render())

    try:
        asyncio.run(scenario())
    finally:
        src.close()


def rings_of(ram: SharedRamSource, cpus: int) -> dict[int, int] | None:
    """Every CPU's ring address once the hypervisor registered them all (else None)."""
    try:
        disc = discover(ram, elf=image_path())
    except TraceError:
        return None
    return disc.rings if len(disc.rings) == cpus and disc.vendor else None


def test_a_cpu_waits_for_its_reader_then_every_exit_arrives() -> None:
    """No reader for a second after CPU 0 filled its 64-record ring: it waits (head stays at 64, no
    drop, no overwrite) instead of losing; once we attach, both CPUs deliver seq 1..n without a gap."""
    with QemuSession(cpus=2, memory_mb=64, cmdline="storm=1 ring=64 ring_wait=30", timeout=120) as s:
        wait_for(lambda: s.ram_path is not None and s.ram_path.exists(), 30, "the RAM file")
        assert s.ram_path is not None
        with SharedRamSource(s.ram_path) as ram:
            found: dict[int, int] = {}
            wait_for(lambda: found.update(rings_of(ram, 2) or {}) or found, 30, "both rings registered")
            first = RingReader(ram, found[0])
            wait_for(lambda: first.head() == 64, 30, "CPU 0's ring to fill")
            time.sleep(1.0)  # a storm laps a 64-record ring thousands of times a second
            hdr = HvRing.from_buffer_copy(ram.read(found[0], RING_HEADER))
            assert (hdr.head, hdr.dropped, hdr.wait_expired) == (64, 0, 0)  # it waited
            rings = RingSet(ram, discover(ram, elf=image_path()), lossless=True)
            got: list[np.ndarray] = []
            deadline = time.monotonic() + 60
            while min(r.stats.consumed for r in rings.readers) < 2000:
                assert time.monotonic() < deadline, [r.stats for r in rings.readers]
                got.append(rings.poll())
            waited = rings.readers[0].stats.waited_ticks
            lost = sum(st.lost for st in rings.stats)
            rings.detach()
    recs = np.concatenate(got)
    assert lost == 0
    assert waited > 0
    for cpu in (0, 1):
        seq = recs[recs["cpu"] == cpu]["seq"].astype(np.int64)
        assert (seq == np.arange(1, len(seq) + 1)).all(), cpu


def test_a_ring_nobody_reads_keeps_the_newest_exits() -> None:
    """A plain run (no capture, no ring_wait): the default policy overwrites, so whoever looks later
    (gdb's hv-exits at a break) finds the exits leading up to now, not the first ring-full of the run."""
    with QemuSession(cpus=1, memory_mb=64, cmdline="storm=1 ring=64", timeout=60) as s:
        wait_for(lambda: any(line.startswith("storm:") for line in s.lines), 30, "the storm")
        assert s.ram_path is not None
        with SharedRamSource(s.ram_path) as ram:
            paddr = discover(ram, elf=image_path()).rings[0]
            wait_for(lambda: RingReader(ram, paddr).head() > 100 * 64, 30, "100 ring laps")
            hdr = HvRing.from_buffer_copy(ram.read(paddr, RING_HEADER))
            assert hdr.policy == HvRingPolicy.OVERWRITE
            assert hdr.reader == HvReader.NONE
            assert hdr.dropped == 0
            reader = RingReader(ram, paddr)  # passive, as gdbext reads: never attaches
            head = reader.head()
            recs = reader.poll()
    assert len(recs) > 0
    # Only the newest: every record is from the last ring's worth before (or after) we looked.
    assert int(recs["seq"].min()) > head - 64
    assert int(recs["seq"].max()) >= head
    assert (np.diff(recs["seq"].astype(np.int64)) > 0).all()
