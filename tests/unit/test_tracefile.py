"""Trace file format (docs/trace-format.md): round trip, index, recovery, damaged and wrong input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from hvtrace.exitcodes import ExitCode
from hvtrace.trace.errors import TraceError
from hvtrace.trace.records import RECORD_DTYPE, Records
from hvtrace.trace.replay import Replay
from hvtrace.trace.tracefile import CHUNK_HEADER, FILE_HEADER, TraceFile, TraceWriter


def make_records(cpu: int, n: int, start_tsc: int = 1000, step: int = 10) -> Records:
    r = np.zeros(n, RECORD_DTYPE)
    r["seq"] = np.arange(1, n + 1)
    r["tsc"] = start_tsc + np.arange(n) * step
    r["cpu"] = cpu
    r["kind"] = 1
    r["reason"] = 10
    r["arg0"] = np.arange(n) % 7
    return r


def write(path: Path, per_cpu: int = 1000, chunk: int = 256) -> dict[int, Records]:
    recs = {0: make_records(0, per_cpu, 1000), 1: make_records(1, per_cpu, 1005)}
    with TraceWriter(path, {"vendor": 1, "vendor_name": "VMX", "cpus": 2}, chunk_records=chunk) as w:
        for i in range(0, per_cpu, 100):
            w.add(np.concatenate([recs[0][i : i + 100], recs[1][i : i + 100]]))
        w.note_lost(1, 5)
    return recs


def test_round_trip_with_index(tmp_path: Path) -> None:
    p = tmp_path / "t.hvt"
    recs = write(p)
    tf = TraceFile.open(p)
    assert not tf.recovered
    assert tf.errors == []
    assert tf.meta["vendor_name"] == "VMX"
    assert tf.meta["format_version"] == 3  # columnar chunks with summaries; without: 2, classic: 1
    assert tf.record_count == 2000
    assert tf.cpus == [0, 1]
    assert (tf.records(0, ordered=False) == recs[0]).all()
    allr = tf.records()
    assert (np.diff(allr["tsc"].astype(np.int64)) >= 0).all()
    assert tf.lost() == {1: 5}
    assert tf.summary is not None
    assert tf.summary["records"] == 2000


def test_compact(tmp_path: Path) -> None:
    p = tmp_path / "t.hvt"
    write(p, per_cpu=20000, chunk=4096)
    assert p.stat().st_size < 40000 * 64 / 4  # at least 4x smaller than the raw records


def test_missing_index_is_rebuilt_by_scanning(tmp_path: Path) -> None:
    p = tmp_path / "t.hvt"
    write(p)
    data = p.read_bytes()
    cut = data.rfind(b"HVIX")
    p.write_bytes(data[:cut])
    tf = TraceFile.open(p)
    assert tf.recovered
    assert tf.record_count == 2000
    assert tf.errors == []


def test_truncated_mid_chunk_reads_up_to_the_last_complete_chunk(tmp_path: Path) -> None:
    p = tmp_path / "t.hvt"
    write(p)
    tf = TraceFile.open(p)
    last = int(tf.index["offset"][-2])
    p.write_bytes(p.read_bytes()[: last + CHUNK_HEADER.size + 3])
    tf2 = TraceFile.open(p)
    assert tf2.truncated_at == last
    assert tf2.record_count == int(tf.index["count"][:-2].sum())
    assert len(tf2.records()) == tf2.record_count


def test_bad_checksum_names_the_chunk_and_the_rest_stays_readable(tmp_path: Path) -> None:
    p = tmp_path / "t.hvt"
    write(p)
    tf = TraceFile.open(p)
    off = int(tf.index["offset"][3]) + CHUNK_HEADER.size + 5
    data = bytearray(p.read_bytes())
    data[off] ^= 0xFF
    p.write_bytes(bytes(data))
    tf2 = TraceFile.open(p)
    recs = tf2.records()
    assert len(recs) == 2000 - int(tf.index["count"][3])
    assert len(tf2.errors) == 1
    assert "chunk 3 at offset" in str(tf2.errors[0])
    assert "checksum" in str(tf2.errors[0])


@pytest.mark.parametrize(
    ("content", "code", "text"),
    [
        (b"", ExitCode.BAD_DATA, "empty"),
        (b"#!/bin/sh\necho not a trace\n", ExitCode.BAD_DATA, "not an hvtrace trace file"),
        (FILE_HEADER.pack(b"HVTRACE\x00", 99, 1, 0, 0), ExitCode.ABI_MISMATCH, "format version 99 is newer"),
        (FILE_HEADER.pack(b"HVTRACE\x00", 1, 7, 0, 0), ExitCode.ABI_MISMATCH, "ABI version 7"),
        (
            FILE_HEADER.pack(b"HVTRACE\x00", 1, 1, 500, 0) + b"{",
            ExitCode.BAD_DATA,
            "truncated inside the file header",
        ),
    ],
)
def test_wrong_files_give_one_clear_error(tmp_path: Path, content: bytes, code: ExitCode, text: str) -> None:
    p = tmp_path / "x.hvt"
    p.write_bytes(content)
    with pytest.raises(TraceError) as e:
        TraceFile.open(p)
    assert e.value.code == code
    assert text in e.value.message
    assert "\n" not in e.value.message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TraceError) as e:
        TraceFile.open(tmp_path / "nope.hvt")
    assert e.value.code == ExitCode.NO_INPUT


WRITER = """
import sys, time, numpy as np
from hvtrace.trace.records import RECORD_DTYPE
from hvtrace.trace.tracefile import TraceWriter
w = TraceWriter(sys.argv[1], {"vendor": 1}, chunk_records=100)
seq = 0
while True:
    r = np.zeros(50, RECORD_DTYPE); r["seq"] = np.arange(seq + 1, seq + 51); r["tsc"] = r["seq"]; seq += 50
    w.add(r)
    if seq % 1000 == 0:
        w.flush(); print(seq, flush=True)
    time.sleep(0.001)
"""


def test_writer_killed_with_sigkill_is_readable(tmp_path: Path) -> None:
    p = tmp_path / "killed.hvt"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(p)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        flushed = 0
        while flushed < 3000:
            flushed = int(proc.stdout.readline())
        time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    tf = TraceFile.open(p)
    assert tf.recovered
    assert tf.errors == []
    recs = tf.records(ordered=False)
    assert len(recs) >= flushed
    assert (recs["seq"] == np.arange(1, len(recs) + 1)).all()


def test_replay_time_order_seek_next_reason_and_play(tmp_path: Path) -> None:
    p = tmp_path / "t.hvt"
    recs = write(p, per_cpu=500)
    with TraceWriter(tmp_path / "m.hvt", {"vendor": 1, "tsc_hz": 1000}) as w:
        a = recs[0].copy()
        a["kind"][250] = 2  # one MSR_READ on CPU 0
        a["reason"][250] = 31
        w.add(a)
        w.add(recs[1])
    rp = Replay(tmp_path / "m.hvt")
    assert len(rp) == 1000
    assert (np.diff(rp.records["tsc"].astype(np.int64)) >= 0).all()
    rp.seek_time(2.5)  # 2.5 s at 1000 Hz = 2500 ticks after the first record
    assert int(rp.current()["tsc"][0]) == 1000 + 2500
    rp.seek_index(0)
    at = rp.next_reason("MSR_READ")
    assert at is not None
    assert int(rp.current()["kind"][0]) == 2
    assert rp.next_reason("MSR_READ") is None
    rp.seek_index(0)
    slept: list[float] = []
    got: list[int] = []
    n = rp.play(lambda b: got.append(len(b)), speed=10.0, batch_s=0.1, sleep=slept.append)
    assert n == 1000
    assert sum(got) == 1000
    # The span is 4995 ticks = 5 s at 1000 Hz, 0.5 s at 10x; batches of 0.1 s (1000 ticks) are emitted at
    # the time of their first record, so the pacing before the last batch is 4 x 0.1 s.
    assert len(got) == 5
    assert sum(slept) == pytest.approx(0.4)


def test_rewriting_a_trace_file_never_truncates_it_under_an_open_reader(tmp_path: Path) -> None:
    """TraceFile maps the file: a capture to the same path while a replay has it open must leave the
    reader's records intact (a truncated mapping would kill the reader with SIGBUS)."""
    path = tmp_path / "t.hvt"
    first = np.zeros(5000, dtype=RECORD_DTYPE)
    first["seq"] = np.arange(1, 5001)
    first["tsc"] = np.arange(5000) * 10 + 1
    with TraceWriter(path, {"vendor": 2, "cpus": 1}) as w:
        w.add(first)
    reader = TraceFile.open(path)
    with TraceWriter(path, {"vendor": 2, "cpus": 1}) as w:
        w.add(first[:3])
    assert reader.records()["seq"].tolist() == list(range(1, 5001))
    assert len(TraceFile.open(path).records()) == 3
