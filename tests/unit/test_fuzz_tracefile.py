"""Fuzzing the trace-file reader: any bytes give records or one TraceError, never another exception.

Bounded and deterministic for CI (derandomize); benchmarks/fuzz_parsers.py runs 10^6 inputs. The
regression tests below are the crashes the fuzzer found on the reader before it was hardened.
"""

from __future__ import annotations

import json
import random
import struct
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hvtrace.exitcodes import ExitCode
from hvtrace.trace.errors import TraceError
from hvtrace.trace.mutate import (
    fix_trace_crcs,
    fuzz_input,
    index_blob,
    index_entry,
    run_tracefile,
    trace_bytes,
    with_json_meta,
)
from hvtrace.trace.tracefile import CHUNK_HEADER, MAX_CHUNK_RECORDS, TRAILER, TRAILER_MAGIC, TraceFile

SEEDS = [trace_bytes(), trace_bytes(closed=False), trace_bytes(50, 4096)]
FUZZ = settings(derandomize=True, max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))


def parse(data: bytes) -> None:
    """The contract: run_tracefile returns, or raises a one-line TraceError."""
    err: TraceError | None = None
    try:
        run_tracefile(data)
    except TraceError as e:
        err = e
    if err is not None:
        assert "\n" not in err.message
        assert err.message.startswith("fuzz.hvt")
        assert err.code in (ExitCode.BAD_DATA, ExitCode.ABI_MISMATCH)


def test_the_seeds_are_valid() -> None:
    for s in SEEDS:
        tf = TraceFile.from_bytes(s)
        assert not tf.damage
        assert len(tf.records()) == tf.record_count > 0


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes(data: bytes) -> None:
    parse(data)


@FUZZ
@given(st.binary(max_size=512))
def test_random_bytes_after_a_valid_header(data: bytes) -> None:
    parse(SEEDS[0][:200] + data)


@settings(FUZZ, max_examples=1000)
@given(st.integers(0, 2**32))
def test_mutations_of_valid_files(seed: int) -> None:
    """Bit flips, truncation, duplicated/removed/swapped blocks, huge values at fields; checksums
    recomputed half of the time so the mutations reach the length, offset and JSON checks."""
    rng = random.Random(seed)
    parse(fuzz_input(rng, SEEDS, fix_trace_crcs))


# ------------------------------------------------------------ regressions: crashes the fuzzer found
def _retrailer(body: bytes, chunks: bytes) -> bytes:
    off = len(chunks)
    return chunks + body + TRAILER.pack(off, len(body), zlib.crc32(body), TRAILER_MAGIC)


@pytest.mark.parametrize(
    "meta",
    [b"{not json", b"\x8e\xff{}", b"\x00\x00\x00\x7f\xff\xff\xff\xff", b'{"a": 1} trailing', b"[1, 2]"],
    ids=["bad-json", "bad-utf8", "bad-utf32", "extra-data", "not-an-object"],
)
def test_metadata_that_is_not_a_json_object(meta: bytes) -> None:
    """Found: JSONDecodeError / UnicodeDecodeError from a metadata blob with a valid CRC."""
    with pytest.raises(TraceError) as e:
        TraceFile.from_bytes(with_json_meta(meta), "fuzz.hvt")
    assert e.value.code == ExitCode.BAD_DATA
    assert "file header metadata is not" in e.value.message


def test_deeply_nested_metadata() -> None:
    with pytest.raises(TraceError, match="not valid JSON"):
        TraceFile.from_bytes(with_json_meta(b"[" * 100000 + b"]" * 100000), "fuzz.hvt")


@pytest.mark.parametrize(
    ("key", "value"), [("vendor", "x"), ("tsc_hz", "fast"), ("tsc_hz", -1), ("cpus", 1.5)]
)
def test_metadata_of_the_wrong_type(key: str, value: object) -> None:
    """report/export compute with these keys: a wrong type is refused when the file is opened."""
    with pytest.raises(TraceError, match=f"metadata '{key}'"):
        TraceFile.from_bytes(with_json_meta(json.dumps({key: value}).encode()), "fuzz.hvt")


def test_index_row_pointing_past_the_end_of_the_file() -> None:
    """Found: struct.error / OverflowError in read_chunk from an index offset of 2^62 (valid index CRC)."""
    head = with_json_meta(b"{}")
    for offset in (1 << 62, (1 << 64) - 1, len(head) + 10_000):
        data = _retrailer(index_blob(index_entry(offset, 0, 5), 1, {}), head)
        tf = TraceFile.from_bytes(data, "fuzz.hvt")
        assert tf.index_error is not None
        assert "a chunk offset points outside the chunks" in tf.index_error
        assert len(tf.records()) == 0


def test_index_count_larger_than_the_index() -> None:
    """Found: ValueError from numpy (buffer smaller than requested) for an index chunk count of 10^6."""
    head = with_json_meta(b"{}")
    data = _retrailer(index_blob(b"", 1_000_000, {}), head)
    tf = TraceFile.from_bytes(data, "fuzz.hvt")
    assert tf.index_error is not None
    assert "lengths do not add up" in tf.index_error


def test_summary_that_is_not_json() -> None:
    head = with_json_meta(b"{}")
    body = index_blob(b"", 0, {})[:-2] + b"\xff\xfe"
    tf = TraceFile.from_bytes(_retrailer(body, head), "fuzz.hvt")
    assert tf.index_error is not None
    assert "summary is not a JSON object" in tf.index_error


def _one_chunk(count: int, payload: bytes, flags: int = 1) -> bytes:
    hdr = CHUNK_HEADER.pack(b"HVCK", 0, flags, count, 1, count, 1, 2, 0, len(payload), zlib.crc32(payload), 0)
    hdr = hdr[:-4] + struct.pack("<I", zlib.crc32(hdr[:-4]))
    return with_json_meta(b"{}") + hdr + payload


def test_decompression_bomb_is_not_expanded() -> None:
    """A chunk claiming 2^32-1 records whose payload inflates to 100 MB: refused by its count, and a
    plausible count stops decompression one byte past the expected size (never absurd memory)."""
    bomb = zlib.compress(b"\0" * 100_000_000, 9)
    tf = TraceFile.from_bytes(_one_chunk(0xFFFFFFFF, bomb), "fuzz.hvt")
    assert "implausible record count" in str(tf.errors[0])
    tf = TraceFile.from_bytes(_one_chunk(MAX_CHUNK_RECORDS, bomb), "fuzz.hvt")
    assert len(tf.records()) == 0
    assert "wrong payload length" in str(tf.errors[0])
    assert tf.damage.records == MAX_CHUNK_RECORDS


def test_unknown_chunk_flags_and_bad_compressed_data() -> None:
    tf = TraceFile.from_bytes(_one_chunk(1, b"x" * 64, flags=0x80), "fuzz.hvt")
    assert "unknown flags 0x80" in str(tf.errors[0])
    tf = TraceFile.from_bytes(_one_chunk(1, b"not zlib"), "fuzz.hvt")
    assert len(tf.records()) == 0
    assert "bad compressed data" in str(tf.errors[0])
    assert tf.damage.chunks == 1


def test_a_trailer_with_a_huge_index_offset_allocates_nothing() -> None:
    """Length and offset fields of 2^63 and 2^32-1 (the trailer's u64 offset, u32 length) are checked
    against the file size before any slice or array is made."""
    good = trace_bytes()
    for off, length in ((1 << 63, 0xFFFFFFFF), ((1 << 64) - 1, 16), (0, 0xFFFFFFFF)):
        data = good[: -TRAILER.size] + TRAILER.pack(off, length, 0, TRAILER_MAGIC)
        tf = TraceFile.from_bytes(data, "fuzz.hvt")
        assert tf.index_error is not None
        assert "trailer points outside the file" in tf.index_error
        assert len(tf.records()) == 600
