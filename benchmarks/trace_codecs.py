"""Chunk codecs on real captures: ratio, compress and decompress MB/s (of raw record bytes), one run.

Usage: .venv/bin/python -m benchmarks.trace_codecs [FILE.hvt ...] [--capture SECONDS]
Default input: tests/data/trace-v2-qemu-storm-2cpu.hvt (a real QEMU capture); --capture adds a fresh
2-CPU QEMU storm capture of that many seconds. Every chunk of the input is byte-shuffled as the writer
does (4096 records a chunk) and each codec is timed over all of them, best of ROUNDS. "zstd -3 split"
(one frame per record field; measured, not adopted) also gets "report": decompressing only the fields
`hvtrace report` reads, against "zstd -3" decompressing everything. Numbers for
the notes (the machine may be shared: the load is printed); no asserts.
"""

from __future__ import annotations

import argparse
import functools
import os
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import lz4.block
import numpy as np
import zstandard

from hvtrace import paths
from hvtrace.trace import chunk_codec
from hvtrace.trace.fileformat import shuffle
from hvtrace.trace.records import RECORD_DTYPE
from hvtrace.trace.report_scan import FIELDS
from hvtrace.trace.tracefile import TraceFile

ROUNDS = 5
CHUNK = 4096


def chunks_of(path: Path) -> list[bytes]:
    recs = TraceFile.open(path).records(ordered=False)
    out = []
    for cpu in np.unique(recs["cpu"]).tolist():
        mine = recs[recs["cpu"] == cpu]
        out += [shuffle(mine[i : i + CHUNK]) for i in range(0, len(mine), CHUNK)]
    return out


def best(fn: Callable[[], object]) -> float:
    times = []
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


LAYOUT = chunk_codec.field_layout(RECORD_DTYPE)


def _frame(data: bytes) -> bytes:
    return struct.pack("<I", len(data)) + data


def _split_frames(packed: bytes, count: int, fields: Sequence[str]) -> dict[str, bytes]:
    """Decompress only the named fields' frames of a split payload."""
    zd, out, pos = zstandard.ZstdDecompressor(), {}, 0
    for name, _off, size in LAYOUT:
        (n,) = struct.unpack_from("<I", packed, pos)
        if name in fields:
            out[name] = zd.decompress(packed[pos + 4 : pos + 4 + n], max_output_size=size * count)
        pos += 4 + n
    return out


Codec = tuple[str, Callable[[bytes], bytes], Callable[[bytes, int], object]]


def codecs() -> list[Codec]:
    zd = zstandard.ZstdDecompressor()

    def zstd(level: int) -> Codec:
        cz = zstandard.ZstdCompressor(level=level)
        return (f"zstd -{level}", cz.compress, lambda c, n: zd.decompress(c, max_output_size=n))

    cz3 = zstandard.ZstdCompressor(level=3)

    def split(raw: bytes) -> bytes:  # one frame per field (a candidate, measured, not adopted)
        n = len(raw) // RECORD_DTYPE.itemsize
        return b"".join(_frame(cz3.compress(raw[o * n : (o + s) * n])) for _f, o, s in LAYOUT)

    def split_dec(c: bytes, n: int) -> object:
        return _split_frames(c, n // RECORD_DTYPE.itemsize, [f for f, _o, _s in LAYOUT])

    return [
        ("zlib -1", lambda r: zlib.compress(r, 1), lambda c, n: zlib.decompress(c)),
        zstd(1),
        zstd(3),
        ("zstd -3 split", split, split_dec),
        ("lz4", lambda r: lz4.block.compress(r, store_size=False),
         lambda c, n: lz4.block.decompress(c, uncompressed_size=n)),
        ("lz4 hc9", lambda r: lz4.block.compress(r, mode="high_compression", compression=9, store_size=False),
         lambda c, n: lz4.block.decompress(c, uncompressed_size=n)),
    ]  # fmt: skip


def _report_fields(packed: bytes, raw_len: int) -> object:
    return _split_frames(packed, raw_len // RECORD_DTYPE.itemsize, FIELDS)


def _compress_all(comp: Callable[[bytes], bytes], chunks: list[bytes]) -> list[bytes]:
    return [comp(c) for c in chunks]


def _decompress_all(dec: Callable[[bytes, int], object], packed: list[bytes], chunks: list[bytes]) -> None:
    for p, c in zip(packed, chunks, strict=True):
        dec(p, len(c))


def measure(name: str, chunks: list[bytes]) -> None:
    raw = sum(map(len, chunks))
    records = raw // RECORD_DTYPE.itemsize
    print(f"\n{name}: {records} records, {raw / 1e6:.1f} MB of records, {len(chunks)} chunks")
    print(f"{'codec':<15} {'ratio':>6} {'B/rec':>6} {'compress':>10} {'decompress':>11} {'report':>9}")
    for label, comp, dec in codecs():
        packed = _compress_all(comp, chunks)
        t_c = best(functools.partial(_compress_all, comp, chunks))
        t_d = best(functools.partial(_decompress_all, dec, packed, chunks))
        size = sum(map(len, packed))
        report = ""
        if label == "zstd -3 split":
            t_r = best(functools.partial(_decompress_all, _report_fields, packed, chunks))
            report = f"{raw / t_r / 1e6:7.0f}"
        print(
            f"{label:<15} {raw / size:6.1f} {size / records:6.2f} {raw / t_c / 1e6:7.0f} MB/s"
            f" {raw / t_d / 1e6:7.0f} MB/s {report:>9}"
        )  # fmt: skip


def capture(seconds: float, dest: Path) -> Path:
    cmd = [sys.executable, "-m", "hvtrace", "capture", "--backend", "qemu", "--cpus", "2",
           "--append", "storm=1", "--duration", str(seconds), "--quiet", "-o", str(dest)]  # fmt: skip
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return dest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", type=Path)
    ap.add_argument("--capture", type=float, metavar="SECONDS", help="add a fresh QEMU storm capture")
    args = ap.parse_args()
    files = args.files or [paths.repo_root() / "tests" / "data" / "trace-v2-qemu-storm-2cpu.hvt"]
    load = os.getloadavg()[0]
    print(f"load average {load:.1f} on {os.cpu_count()} CPUs; MB/s of raw records, best of {ROUNDS}")
    with tempfile.TemporaryDirectory() as tmp:
        if args.capture:
            files.append(capture(args.capture, Path(tmp, "storm.hvt")))
        for f in files:
            measure(f.name, chunks_of(f))


if __name__ == "__main__":
    main()
