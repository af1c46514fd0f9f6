"""The columnar chunk layout (FLAG_COLUMNS, format version 2): lossless for any values (wrapping TSC
deltas, resume TSC 0, full-width fields), narrow where the values allow, frame B decoded only for
its fields, a hostile prefix refused as damage; classic writers still write format version 1, which
the previous release reads, and the report of a columnar copy equals the classic file's."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from hvtrace import paths
from hvtrace.trace import chunk_columns
from hvtrace.trace.chunk_codec import CodecError
from hvtrace.trace.fileformat import CHUNK_HEADER, FILE_HEADER, FLAG_COLUMNS, FLAG_ZSTD
from hvtrace.trace.records import RECORD_DTYPE
from hvtrace.trace.report import build_report
from hvtrace.trace.tracefile import TraceFile
from hvtrace.trace.writer import TraceWriter

DATA = paths.repo_root() / "tests" / "data"
STORM = DATA / "trace-v2-qemu-storm-2cpu.hvt"
FIELDS = RECORD_DTYPE.names or ()


def odd_records() -> np.ndarray:
    """Records that defeat every narrowing: TSCs going backwards and wrapping, resume TSC 0 and
    below the exit TSC, 64-bit values in every field."""
    rng = np.random.default_rng(7)
    recs = np.zeros(257, RECORD_DTYPE)
    for name in FIELDS:
        info = np.iinfo(RECORD_DTYPE.fields[name][0])  # type: ignore[index]
        recs[name] = rng.integers(0, info.max, len(recs), dtype=RECORD_DTYPE.fields[name][0], endpoint=True)  # type: ignore[index]
    recs["tsc"][:3] = [2**64 - 1, 0, 5]
    recs["tsc_resume"][:3] = [0, 2**64 - 1, 4]
    recs["cpu"] = 3
    return recs


@pytest.mark.parametrize("codec", [FLAG_ZSTD, 0])
def test_any_values_come_back_exactly(codec: int) -> None:
    recs = odd_records()
    payload = chunk_columns.encode(recs, codec)
    cols = chunk_columns.decode(payload, codec | FLAG_COLUMNS, len(recs), RECORD_DTYPE, FIELDS)
    for name in FIELDS:
        assert np.array_equal(cols[name], recs[name]), name


def test_a_real_capture_is_stored_narrow_and_smaller(tmp_path: Path) -> None:
    recs = TraceFile.open(STORM).records(ordered=False)
    one_cpu = recs[recs["cpu"] == 0][:4096]
    payload = chunk_columns.encode(one_cpu, FLAG_ZSTD)
    _len_a, widths, _base = struct.unpack_from("<I8sQ", payload)
    # kind, reason, tsc delta, handling, arg0, gpa: a delta and a handling time fit in 4 bytes
    assert widths[0] == 1
    assert widths[2] <= 4
    assert widths[3] <= 4
    sizes = {}
    for columns in (True, False):
        path = tmp_path / f"{columns}.hvt"
        with TraceWriter(path, {"vendor": 2, "cpus": 2}, columns=columns) as w:
            w.add(recs)
        sizes[columns] = path.stat().st_size
        assert TraceFile.open(path).records().tobytes() == TraceFile.open(STORM).records().tobytes()
    assert sizes[True] < sizes[False]


def test_the_report_fields_never_decode_frame_b() -> None:
    recs = odd_records()
    payload = bytearray(chunk_columns.encode(recs, FLAG_ZSTD))
    (len_a,) = struct.unpack_from("<I", payload)
    payload[24 + len_a :] = b"garbage: frame B is damaged"
    flags = FLAG_ZSTD | FLAG_COLUMNS
    cols = chunk_columns.decode(bytes(payload), flags, len(recs), RECORD_DTYPE, chunk_columns.COLUMN_FIELDS)
    assert np.array_equal(cols["tsc_resume"], recs["tsc_resume"])
    with pytest.raises(CodecError):
        chunk_columns.decode(bytes(payload), flags, len(recs), RECORD_DTYPE, ["seq"])


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p[:10],  # shorter than the prefix
        lambda p: struct.pack("<I", 10**9) + p[4:],  # frame A beyond the payload
        lambda p: p[:4] + b"\x03" + p[5:],  # a width that is not 1, 2, 4, 8
        lambda p: p[:5] + b"\x08" + p[6:],  # wider than the field (reason: 2 bytes)
    ],
)
def test_a_hostile_prefix_is_a_codec_error(damage) -> None:  # type: ignore[no-untyped-def]
    recs = odd_records()
    payload = damage(chunk_columns.encode(recs, FLAG_ZSTD))
    with pytest.raises(CodecError):
        chunk_columns.decode(payload, FLAG_ZSTD | FLAG_COLUMNS, len(recs), RECORD_DTYPE, FIELDS)


def test_a_chunk_that_does_not_decode_is_skipped_as_damage(tmp_path: Path) -> None:
    path = tmp_path / "bad.hvt"
    with TraceWriter(path, {"vendor": 2, "cpus": 1}) as w:
        w.add(odd_records())
    data = bytearray(path.read_bytes())
    off = int(TraceFile.open(path).index["offset"][0])
    hdr = list(CHUNK_HEADER.unpack_from(data, off))
    start = off + CHUNK_HEADER.size
    data[start + 4] = 3  # kind's width: not a width (payload CRC fixed up: it passes the open checks)
    hdr[10] = zlib.crc32(bytes(data[start : start + hdr[9]]))
    body = CHUNK_HEADER.pack(*hdr[:-1], 0)[:-4]
    data[off : off + CHUNK_HEADER.size] = body + struct.pack("<I", zlib.crc32(body))
    path.write_bytes(bytes(data))
    tf = TraceFile.open(path)
    assert build_report(tf, jobs=1)["records"] == 0
    assert tf.damage.records == 257
    assert "bad column widths" in tf.damage.problems[0]


def test_classic_writers_write_format_1_columnar_ones_2_and_with_summaries_3(tmp_path: Path) -> None:
    for columns, summaries, version in ((False, True, 1), (True, False, 2), (True, True, 3)):
        path = tmp_path / f"{version}.hvt"
        with TraceWriter(path, {"vendor": 2, "cpus": 1}, columns=columns, summaries=summaries) as w:
            w.add(odd_records())
        head = FILE_HEADER.unpack_from(path.read_bytes())
        assert head[1] == version == TraceFile.open(path).meta["format_version"]


def test_the_report_of_a_columnar_copy_equals_the_classic_files(tmp_path: Path) -> None:
    for src in (STORM, DATA / "trace-v2-svm-2cpu-storm.hvt"):
        tf = TraceFile.open(src)
        dest = tmp_path / src.name
        with TraceWriter(dest, dict(tf.meta), chunk_records=500) as w:
            w.add(tf.records())
        classic, columnar = build_report(tf, jobs=1), build_report(TraceFile.open(dest), jobs=1)
        for key in ("records", "by_reason", "by_cpu", "drilldown", "span_ticks", "handling_ticks"):
            assert columnar[key] == classic[key], (src.name, key)
