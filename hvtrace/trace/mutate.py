"""Inputs for the parser fuzzers (tests/unit/test_fuzz_*.py, benchmarks/fuzz_parsers.py).

Valid seeds (a trace file, a 0xE9 frame stream, a discovery header, a ring header) and mutations of
them: bit flips, byte overwrites, truncation, duplicated / removed / reordered chunks, huge values
planted at length and count fields. A random mutation mostly breaks a checksum, which the parsers
catch early; :func:`fix_trace_crcs` and :func:`frame_crcs` recompute the checksums afterwards so the
mutated lengths, counts, offsets and JSON reach the deeper checks too. Pure functions of a
``random.Random``: a seed reproduces an input exactly.
"""

from __future__ import annotations

import ctypes
import io
import json
import random
import struct
import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Final

import numpy as np

from hvtrace.abi import (
    HV_ABI_VERSION,
    HV_DISCOVERY_MAGIC,
    HV_FRAME_MAGIC,
    HV_FRAME_SIZE,
    HV_RECORD_SIZE,
    HvDiscovery,
    HvRing,
    HvRingPolicy,
)
from hvtrace.trace import chunk_summary
from hvtrace.trace.discovery import parse_header
from hvtrace.trace.errors import TraceError
from hvtrace.trace.frames import FrameStreamSource, decode_frames
from hvtrace.trace.reader import parse_ring_header
from hvtrace.trace.records import RECORD_DTYPE, Records
from hvtrace.trace.report_agg import Aggregate
from hvtrace.trace.tracefile import (
    CHUNK_HEADER,
    CHUNK_MAGIC,
    FILE_HEADER,
    INDEX_DTYPE,
    INDEX_MAGIC,
    TRAILER,
    TRAILER_MAGIC,
    TraceFile,
    TraceWriter,
)

#: Values planted into length / count / offset fields: the edges a parser must not trust.
HUGE: Final = (0, 1, 0x7F, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 1 << 32, 1 << 63, (1 << 64) - 1)


def make_records(n: int, cpus: int = 2, seed: int = 0) -> Records:
    """``n`` plausible records spread over ``cpus`` CPUs (seq continuous per CPU, TSC increasing)."""
    rng = np.random.default_rng(seed)
    r = np.zeros(n, RECORD_DTYPE)
    r["cpu"] = np.arange(n) % cpus
    r["seq"] = np.arange(n) // cpus + 1
    r["tsc"] = 1000 + np.arange(n) * 37
    r["kind"] = rng.integers(0, 18, n)
    r["reason"] = rng.integers(0, 0x400, n)
    r["rip"] = rng.integers(0x1000, 0x2000, n)
    r["arg0"] = rng.integers(0, 1 << 32, n)
    return r


def trace_bytes(n: int = 600, chunk: int = 64, *, closed: bool = True, tmp: Path | None = None) -> bytes:
    """A valid trace file of ``n`` records in chunks of ``chunk`` (``closed=False``: no index, as killed)."""
    with tempfile.TemporaryDirectory(dir=tmp) as d:
        p = Path(d) / "seed.hvt"
        w = TraceWriter(p, {"vendor": 2, "vendor_name": "SVM", "cpus": 2, "tsc_hz": 1e9}, chunk_records=chunk)
        recs = make_records(n)
        w.add(recs[: n // 2])
        w.note_lost(1, 3)
        w.add(recs[n // 2 :])
        w.code = {0x1000: b"\x0f\xa2", 0x1002: b"\xf4"}
        if closed:
            w.close({"stop": "count"})
        else:
            w.flush()
            w._fh.close()
        return p.read_bytes()


def frame(rec: bytes) -> bytes:
    return struct.pack("<I", HV_FRAME_MAGIC) + rec + struct.pack("<I", zlib.crc32(rec))


def frame_stream(n: int = 40, seed: int = 0) -> bytes:
    """Console text interleaved with ``n`` valid frames (as Bochs' port-0xE9 output looks)."""
    out = io.BytesIO()
    for i, rec in enumerate(make_records(n, seed=seed)):
        if i % 7 == 0:
            out.write(b"hv: some console text\n")
        out.write(frame(rec.tobytes()))
    return out.getvalue()


def discovery_bytes(cpus: int = 2, cap: int = 1024) -> bytes:
    """A valid, populated discovery header (rings registered, page aligned and apart)."""
    h = HvDiscovery()
    h.magic = HV_DISCOVERY_MAGIC
    h.abi_version = HV_ABI_VERSION
    h.header_size = ctypes.sizeof(HvDiscovery)
    h.vendor = 2
    h.cpu_count = cpus
    h.record_size = HV_RECORD_SIZE
    h.ring_capacity = cap
    size = (ctypes.sizeof(HvRing) + cap * HV_RECORD_SIZE + 0xFFF) & ~0xFFF  # pool pages, as trace.c
    for c in range(cpus):
        h.ring[c] = 0x1000000 + c * size
    return bytes(h)


def ring_bytes(cpu: int = 1, cap: int = 1024, head: int = 50) -> bytes:
    r = HvRing()
    r.head, r.tail, r.capacity, r.policy, r.enabled, r.cpu = head, 10, cap, HvRingPolicy.DROP_NEWEST, 1, cpu
    return bytes(r)


# ---------------------------------------------------------------------------------------- mutations
def _flip(rng: random.Random, b: bytearray) -> None:
    for _ in range(rng.randint(1, 8)):
        i = rng.randrange(len(b))
        b[i] ^= 1 << rng.randrange(8)


def _overwrite(rng: random.Random, b: bytearray) -> None:
    i = rng.randrange(len(b))
    b[i : i + 8] = rng.randbytes(min(8, len(b) - i))


def _plant(rng: random.Random, b: bytearray) -> None:
    """A huge / edge value at a 4- or 8-byte field (lengths, counts and offsets are such fields)."""
    size = rng.choice((4, 8))
    if len(b) < size:
        return
    i = rng.randrange(0, len(b) - size + 1, 4)
    v = rng.choice(HUGE) & ((1 << (8 * size)) - 1)
    b[i : i + size] = v.to_bytes(size, "little")


def _truncate(rng: random.Random, b: bytearray) -> None:
    del b[rng.randrange(len(b)) :]


def _duplicate(rng: random.Random, b: bytearray) -> None:
    i = rng.randrange(len(b))
    j = min(len(b), i + rng.randint(1, 512))
    at = rng.randrange(len(b) + 1)
    b[at:at] = b[i:j]


def _remove(rng: random.Random, b: bytearray) -> None:
    i = rng.randrange(len(b))
    del b[i : i + rng.randint(1, 256)]


def _swap(rng: random.Random, b: bytearray) -> None:
    """Two equal-sized blocks exchanged (reordered chunks / frames)."""
    n = rng.randint(1, max(1, len(b) // 4))
    if 2 * n > len(b):
        return
    i = rng.randrange(0, len(b) - 2 * n + 1)
    j = rng.randrange(i + n, len(b) - n + 1)
    b[i : i + n], b[j : j + n] = b[j : j + n], b[i : i + n]


MUTATIONS: Final[tuple[Callable[[random.Random, bytearray], None], ...]] = (
    _flip,
    _overwrite,
    _plant,
    _plant,
    _truncate,
    _duplicate,
    _remove,
    _swap,
)


def mutate(rng: random.Random, data: bytes, rounds: int | None = None) -> bytearray:
    """``data`` after 1-4 random mutations."""
    b = bytearray(data)
    for _ in range(rounds if rounds is not None else rng.randint(1, 4)):
        if not b:
            break
        rng.choice(MUTATIONS)(rng, b)
    return b


# -------------------------------------------------------------------------------- checksum fix-ups
def fix_trace_crcs(b: bytearray) -> bytearray:
    """Recompute every CRC a trace-file parser checks, as far as the (mutated) structure is walkable:
    metadata, each chunk header and payload found at a chunk magic, the index when the trailer points
    at one. Never raises on any input."""
    if len(b) >= FILE_HEADER.size and b[:8] == b"HVTRACE\x00":
        mlen = struct.unpack_from("<I", b, 12)[0]
        end = FILE_HEADER.size + mlen
        if end <= len(b):
            struct.pack_into("<I", b, 16, zlib.crc32(b[FILE_HEADER.size : end]))
    pos = b.find(CHUNK_MAGIC)
    while pos >= 0 and pos + CHUNK_HEADER.size <= len(b):
        plen = struct.unpack_from("<I", b, pos + 52)[0]
        pend = pos + CHUNK_HEADER.size + plen
        if pend <= len(b):
            struct.pack_into("<I", b, pos + 56, zlib.crc32(b[pos + CHUNK_HEADER.size : pend]))
        struct.pack_into("<I", b, pos + 60, zlib.crc32(b[pos : pos + CHUNK_HEADER.size - 4]))
        pos = b.find(CHUNK_MAGIC, pos + 4)
    if len(b) >= TRAILER.size and b[-8:] == TRAILER_MAGIC:
        off, length = struct.unpack_from("<QI", b, len(b) - TRAILER.size)
        if off + length <= len(b) - TRAILER.size:
            struct.pack_into("<I", b, len(b) - TRAILER.size + 12, zlib.crc32(b[off : off + length]))
    return b


def fix_frame_crcs(b: bytearray) -> bytearray:
    """Recompute the CRC of every whole frame after a frame magic."""
    magic = struct.pack("<I", HV_FRAME_MAGIC)
    pos = b.find(magic)
    while pos >= 0 and pos + 72 <= len(b):
        struct.pack_into("<I", b, pos + 68, zlib.crc32(b[pos + 4 : pos + 68]))
        pos = b.find(magic, pos + 4)
    return b


def index_entry(offset: int, cpu: int, count: int) -> bytes:
    """One INDEX_DTYPE row (for hand-made index damage in tests)."""
    row = np.zeros(1, INDEX_DTYPE)
    row["offset"], row["cpu"], row["count"] = offset, cpu, count
    return row.tobytes()


def with_json_meta(meta: bytes) -> bytes:
    """A trace file whose metadata blob is ``meta`` (valid CRC, no chunks): the JSON parser's input."""
    return FILE_HEADER.pack(b"HVTRACE\x00", 1, HV_ABI_VERSION, len(meta), zlib.crc32(meta)) + meta


def index_blob(rows: bytes, n: int, summary: object) -> bytes:
    s = json.dumps(summary).encode()
    return INDEX_MAGIC + struct.pack("<II", n, len(s)) + rows + s


# ----------------------------------------------------------------------------------- fuzz targets
# Each target runs one parser over ``data`` the way the tools use it. The contract the fuzzers check:
# it returns, or raises TraceError with a one-line message; any other exception is a parser bug.


def _check(cond: bool, what: str) -> None:
    """A broken invariant of a target (not stripped by ``python -O`` like assert)."""
    if not cond:
        raise AssertionError(what)


def run_tracefile(data: bytes) -> None:
    tf = TraceFile.from_bytes(bytes(data), "fuzz.hvt")
    recs = tf.records()
    dmg = tf.damage
    _check(dmg.chunks == len(tf.errors), "damage count differs from the errors")
    if dmg:
        dmg.line("fuzz.hvt")
    tf.lost()
    _ = tf.code, tf.record_count, tf.cpus
    _check(len(recs) == tf.record_count, "records read differ from the readable count")
    agg = Aggregate()
    for i in range(len(tf.index)):  # the chunk summaries, merged as `hvtrace report` does
        try:
            summary = tf.chunk_summary(i)
        except TraceError:
            continue
        if summary is not None:
            chunk_summary.merge(agg, summary, int(tf.index["cpu"][i]))
    _check(tf.damage.chunks == len(tf.errors), "damage count differs from the errors after summaries")


def run_frames(data: bytes) -> None:
    for final in (False, True):
        recs, used, bad, text = decode_frames(bytes(data), final=final)
        _check(0 <= used <= len(data), "consumed more bytes than given")
        _check(bad >= 0 and text >= 0, "negative counts")
        _check(len(recs) * HV_FRAME_SIZE <= used, "more frames than consumed bytes")
    src = FrameStreamSource(Path("/nonexistent/fuzz.e9"))
    if len(recs):
        src._count_gaps(recs)
        _check(all(v >= 0 for v in src.stats.lost.values()), "negative lost count")


def run_discovery(data: bytes) -> None:
    d = parse_header(bytes(data), 0x100000, "scan", "fuzz")
    _ = d.rings, d.vendor_name, d.build_id, d.cpu_count


def run_ring(data: bytes) -> None:
    parse_ring_header(bytes(data), 0x7000000, "fuzz")


#: name -> (valid seeds, checksum fix-up or None, target)
TARGETS: Final[
    dict[
        str,
        tuple[Callable[[], list[bytes]], Callable[[bytearray], bytearray] | None, Callable[[bytes], None]],
    ]
] = {
    "tracefile": (
        lambda: [trace_bytes(), trace_bytes(closed=False), trace_bytes(50, 4096)],
        fix_trace_crcs,
        run_tracefile,
    ),
    "frames": (lambda: [frame_stream(), frame_stream(3, seed=1)], fix_frame_crcs, run_frames),
    "discovery": (
        lambda: [discovery_bytes(), discovery_bytes(1, 16), discovery_bytes(64, 1 << 20)],
        None,
        run_discovery,
    ),
    "ring": (lambda: [ring_bytes(), ring_bytes(63, 1 << 24, 1 << 40)], None, run_ring),
}


def fuzz_input(rng: random.Random, seeds: list[bytes], fix: Callable[[bytearray], bytearray] | None) -> bytes:
    """One input: random bytes (1 in 8), else a mutated seed, with checksums fixed half of the time."""
    if rng.random() < 0.125:
        return rng.randbytes(rng.randint(0, 2048))
    b = mutate(rng, rng.choice(seeds))
    if fix is not None and rng.random() < 0.5:
        b = fix(b)
    return bytes(b)
