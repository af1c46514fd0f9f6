"""Chunk codecs: new files are zstd (flags ZSTD | COLUMNS | SUMMARY; classic chunks: ZSTD | SHUFFLE);
files written with zlib (every older file) or stored payloads read back the same records, in both
layouts; a hostile or damaged payload is refused (never expanded) and its chunk is skipped as
damage."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import zstandard

from hvtrace import paths
from hvtrace.trace import chunk_codec
from hvtrace.trace.fileformat import (
    CHUNK_HEADER,
    FLAG_COLUMNS,
    FLAG_SHUFFLE,
    FLAG_SUMMARY,
    FLAG_ZLIB,
    FLAG_ZSTD,
)
from hvtrace.trace.tracefile import TraceFile
from hvtrace.trace.writer import TraceWriter

STORM = paths.repo_root() / "tests" / "data" / "trace-v2-qemu-storm-2cpu.hvt"


def chunk_flags(tf: TraceFile) -> set[int]:
    return {CHUNK_HEADER.unpack_from(tf._data, int(off))[2] for off in tf.index["offset"]}


@pytest.mark.parametrize("columns", [True, False], ids=["columnar", "classic"])
@pytest.mark.parametrize("codec", [FLAG_ZSTD, FLAG_ZLIB, 0])
def test_every_codec_reads_back_the_same_records(codec: int, columns: bool, tmp_path: Path) -> None:
    recs = TraceFile.open(STORM).records()
    path = tmp_path / "c.hvt"
    with TraceWriter(path, {"vendor": 2, "cpus": 2}, codec=codec, chunk_records=1000, columns=columns) as w:
        w.add(recs)
    tf = TraceFile.open(path)
    assert chunk_flags(tf) == {codec | (FLAG_COLUMNS | FLAG_SUMMARY if columns else FLAG_SHUFFLE)}
    assert not tf.damage
    assert tf.records().tobytes() == recs.tobytes()


@pytest.mark.parametrize("columns", [True, False], ids=["columnar", "classic"])
def test_new_files_use_zstd_and_fields_are_read_as_columns(columns: bool, tmp_path: Path) -> None:
    recs = TraceFile.open(STORM).records()
    path = tmp_path / "new.hvt"
    with TraceWriter(path, {"vendor": 2, "cpus": 2}, columns=columns) as w:
        w.add(recs)
    tf = TraceFile.open(path)
    assert chunk_flags(tf) == {FLAG_ZSTD | (FLAG_COLUMNS | FLAG_SUMMARY if columns else FLAG_SHUFFLE)}
    count, cols = tf.chunk_columns(0, ["tsc", "kind", "seq"])
    assert set(cols) == {"tsc", "kind", "seq"}
    first = tf.read_chunk(0)
    for name in cols:
        assert np.array_equal(cols[name], first[name]), name
    assert count == len(first)


def test_a_zstd_frame_claiming_another_size_is_refused_before_decompressing() -> None:
    bomb = zstandard.ZstdCompressor(level=19).compress(b"\0" * 50_000_000)
    with pytest.raises(chunk_codec.CodecError, match="wrong payload length"):
        chunk_codec.decode(bomb, FLAG_ZSTD, 80)
    with pytest.raises(chunk_codec.CodecError, match="bad compressed data"):
        chunk_codec.decode(b"not zstd at all", FLAG_ZSTD, 80)
    with pytest.raises(chunk_codec.CodecError, match="conflicting"):
        chunk_codec.decode(bomb, FLAG_ZSTD | FLAG_ZLIB, 80)


def test_a_zstd_payload_that_does_not_decode_is_a_skipped_chunk(tmp_path: Path) -> None:
    recs = TraceFile.open(STORM).records()[:100]
    path = tmp_path / "t.hvt"
    with TraceWriter(path, {"vendor": 2, "cpus": 2}) as w:
        w.add(recs)
    data = bytearray(path.read_bytes())
    off = int(TraceFile.open(path).index["offset"][0])
    hdr = list(CHUNK_HEADER.unpack_from(data, off))
    start = off + CHUNK_HEADER.size
    payload = bytearray(data[start : start + hdr[9]])
    payload[len(payload) // 2 :] = b"\xff" * (len(payload) - len(payload) // 2)  # the frame's tail garbled
    data[start : start + len(payload)] = payload
    hdr[10] = zlib.crc32(bytes(payload))  # a consistent checksum: only decoding can tell
    head = CHUNK_HEADER.pack(*hdr[:-1], 0)[:-4]
    data[off : off + CHUNK_HEADER.size] = head + struct.pack("<I", zlib.crc32(head))
    broken = tmp_path / "broken.hvt"
    broken.write_bytes(bytes(data))
    tf = TraceFile.open(broken)
    assert len(tf.records()) == 100 - int(tf.index["count"][0])
    assert "bad compressed data" in str(tf.errors[0])
