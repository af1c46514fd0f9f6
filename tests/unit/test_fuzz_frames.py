"""Fuzzing the port-0xE9 frame-stream parser (decode_frames and the per-CPU gap count)."""

from __future__ import annotations

import random
import time
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hvtrace.abi import HV_FRAME_SIZE, HV_RECORD_SIZE
from hvtrace.trace.frames import FrameStreamSource, decode_frames
from hvtrace.trace.mutate import fix_frame_crcs, frame, frame_stream, fuzz_input, run_frames
from hvtrace.trace.records import RECORD_DTYPE

SEEDS = [frame_stream(), frame_stream(3, seed=1)]
FUZZ = settings(derandomize=True, max_examples=500, deadline=None, suppress_health_check=list(HealthCheck))


def test_the_seeds_decode_completely() -> None:
    recs, used, bad, _ = decode_frames(SEEDS[0], final=True)
    assert (len(recs), used, bad) == (40, len(SEEDS[0]), 0)


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes(data: bytes) -> None:
    run_frames(data)


@settings(FUZZ, max_examples=1000)
@given(st.integers(0, 2**32))
def test_mutations_of_valid_streams(seed: int) -> None:
    run_frames(fuzz_input(random.Random(seed), SEEDS, fix_frame_crcs))


def test_a_stream_of_magics_is_linear() -> None:
    """Bounded work per byte: 1 MiB of back-to-back frame magics (a candidate every 4 bytes)."""
    data = frame(b"\0" * HV_RECORD_SIZE)[:4] * (1 << 18)
    t = time.perf_counter()
    recs, used, bad, _ = decode_frames(data, final=True)
    assert len(recs) == 0
    assert used == len(data)
    assert bad == (1 << 18) - (HV_FRAME_SIZE // 4 - 1)  # every magic with a whole frame's room after it
    assert time.perf_counter() - t < 10


def test_gap_count_with_huge_sequence_numbers_is_never_negative() -> None:
    """Found by the fuzzer: seq values near 2^63..2^64 wrapped the int64 gap sum to a negative count."""
    r = np.zeros(4, RECORD_DTYPE)
    r["seq"] = [1, 1 << 62, (1 << 63) + 5, (1 << 64) - 1]
    src = FrameStreamSource(Path("/nonexistent/x.e9"))
    src._count_gaps(r)
    assert src.stats.lost == {0: (1 << 64) - 1 - 4}


def test_a_frame_ending_in_the_last_three_bytes_is_consumed_whole(tmp_path: Path) -> None:
    """Found by the benchmark fuzzer (input 105311): a frame followed by 1-2 bytes of a growing stream
    was consumed only up to n-3, so the next poll counted the frame's last CRC bytes as console text
    (and decode_frames reported more frame bytes than it consumed)."""
    one = frame(bytes(range(HV_RECORD_SIZE)))
    recs, used, _, text = decode_frames(one + b"X", final=False)
    assert (len(recs), used, text) == (1, len(one), 0)
    p = tmp_path / "e9.log"
    p.write_bytes(one + b"X")
    src = FrameStreamSource(p)
    assert len(src.poll()) == 1
    with p.open("ab") as fh:
        fh.write(b"hello\n")
    src.poll(final=True)
    assert src.stats.frames == 1
    assert src.stats.text_bytes == len(b"Xhello\n")
