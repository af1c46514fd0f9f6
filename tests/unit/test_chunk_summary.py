"""Chunk summaries (hvtrace.trace.chunk_summary, chunk flag FLAG_SUMMARY, format 3): a summary merged
into the report's aggregate equals aggregating the records themselves, for any values (untimed
records, huge handling times, drill-down values of every kind); a damaged summary makes its chunk
damage like a bad payload; a summary of another version or a chunk the writer cannot summarise is
decoded instead; a cut file reads up to its last complete chunk."""

from __future__ import annotations

import hashlib
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hvtrace.abi import HvExitKind
from hvtrace.decode.record_meaning import DRILLDOWNS, XAPIC_PAGE, drill_key
from hvtrace.trace import chunk_codec, chunk_summary, report_scan
from hvtrace.trace.chunk_codec import CodecError
from hvtrace.trace.errors import TraceError
from hvtrace.trace.fileformat import CHUNK_HEADER, FLAG_SUMMARY, FLAG_ZSTD
from hvtrace.trace.records import RECORD_DTYPE, Records
from hvtrace.trace.report import build_report
from hvtrace.trace.report_agg import Aggregate
from hvtrace.trace.report_scan import chunk_columns
from hvtrace.trace.tracefile import TraceFile
from hvtrace.trace.writer import TraceWriter

K = HvExitKind


def odd_records(n: int = 5000, cpu: int = 1, seed: int = 7) -> Records:
    """One CPU's records with every case the aggregate distinguishes."""
    rng = np.random.default_rng(seed)
    r = np.zeros(n, RECORD_DTYPE)
    r["cpu"], r["seq"] = cpu, np.arange(1, n + 1)
    r["tsc"] = 10_000 + np.cumsum(rng.integers(1, 5000, n)).astype(np.uint64)
    kinds = np.array([K.CPUID, K.MSR_READ, K.MSR_WRITE, K.IO, K.STAGE2_FAULT, K.CR_ACCESS, K.HLT, K.VMCALL])
    r["kind"] = kinds[rng.integers(0, len(kinds), n)]
    r["reason"] = r["kind"].astype(np.uint16) * 3 + rng.integers(0, 2, n).astype(np.uint16)  # 2 per kind
    r["arg0"] = rng.integers(0, 40, n)
    r["arg0"][::97] = np.uint64(1 << 60)  # a drill-down value too wide for the report's hash keys
    r["gpa"] = rng.integers(0, 1 << 40, n).astype(np.uint64)
    r["gpa"][::5] = XAPIC_PAGE + rng.integers(0, 0x400, len(r[::5])).astype(np.uint64)
    handling = rng.integers(0, 100, n).astype(np.uint64)  # below 64: exact histogram buckets
    handling[::3] = rng.integers(1000, 10**7, len(handling[::3])).astype(np.uint64)
    handling[::11] = np.uint64(1 << 50)  # sums beyond float64's exact range
    handling[::997] = np.uint64((1 << 62) + 12345)  # one pair's sum beyond 2^64: the high word
    r["kind"][::997], r["reason"][::997] = K.CPUID, int(K.CPUID) * 3
    r["tsc_resume"] = r["tsc"] + handling
    r["tsc_resume"][::13] = 0  # not resumed (handling unknown)
    r["tsc_resume"][::17] = r["tsc"][::17] - np.uint64(1)  # resumed "before" the exit: unknown too
    return r


def aggregated(recs: Records) -> Aggregate:
    """The report's aggregate of the records, decoded (what the summary must reproduce)."""
    cols: dict[str, Any] = {f: recs[f] for f in ("kind", "reason", "tsc", "tsc_resume", "arg0", "gpa")}
    cols["cpu"] = recs["cpu"]
    cols["timed"] = (cols["tsc_resume"] != 0) & (cols["tsc_resume"] >= cols["tsc"])
    cols["handling"] = cols["tsc_resume"] - cols["tsc"]
    agg = Aggregate()
    agg.add(cols)
    return agg


def same(a: Aggregate, b: Aggregate) -> None:
    assert (a.records, a.first_tsc, a.last_tsc) == (b.records, b.first_tsc, b.last_tsc)
    for mine, theirs in ((a.by_reason, b.by_reason), (a.by_cpu, b.by_cpu)):
        assert mine.keys() == theirs.keys()
        for key, st in mine.items():
            other = theirs[key]
            assert (st.count, st.timed, st.ticks, st.lo, st.hi) == (
                other.count,
                other.timed,
                other.ticks,
                other.lo,
                other.hi,
            ), key
            assert np.array_equal(st.hist, other.hist), key
    assert a.drill == b.drill


def summary_of(recs: Records, flag: int = FLAG_ZSTD) -> chunk_summary.Summary:
    raw = chunk_summary.summarize(recs)
    assert raw is not None
    frame, rlen, rest = chunk_summary.split(chunk_summary.encode(raw, flag) + b"records", len(recs))
    assert bytes(rest) == b"records"
    got = chunk_summary.decode(frame, flag, rlen, len(recs))
    assert got is not None
    return got


@pytest.mark.parametrize("flag", [FLAG_ZSTD, 0])
def test_a_merged_summary_equals_the_aggregate_of_its_records(flag: int) -> None:
    recs = odd_records()
    summary = summary_of(recs, flag)
    assert summary.records == len(recs)
    merged = Aggregate()
    chunk_summary.merge(merged, summary, 1)
    same(merged, aggregated(recs))
    # the exact sum of a pair is the sum of its timed records' handling times, beyond 2^53
    timed = (recs["tsc_resume"] != 0) & (recs["tsc_resume"] >= recs["tsc"])
    want = sum(int(x) for x in (recs["tsc_resume"] - recs["tsc"])[timed])
    assert merged.total_ticks == want > 1 << 64


def test_merging_only_some_pairs_equals_aggregating_only_their_records() -> None:
    recs = odd_records()
    summary = summary_of(recs)
    keep = np.isin(summary.pairs["kind"], [K.IO, K.STAGE2_FAULT]) & (summary.pairs["reason"] % 3 == 0)
    merged = Aggregate()
    chunk_summary.merge(merged, summary, 1, keep)
    sel = np.isin(recs["kind"], [K.IO, K.STAGE2_FAULT]) & (recs["reason"] % 3 == 0)
    assert 0 < merged.records < len(recs)
    same(merged, aggregated(recs[sel]))


def test_one_batch_of_summaries_with_and_without_pair_selections() -> None:
    """merge_many joins a batch's tables before selecting pairs: each summary's rows, CPU and kept
    pairs must stay its own (summaries of several CPUs, all, some and none of their pairs kept)."""
    parts = [odd_records(2000, cpu=c, seed=20 + c) for c in range(4)]
    summaries = [summary_of(p) for p in parts]

    def chosen(kind: Any, reason: Any) -> Any:
        return np.isin(kind, [K.CPUID, K.MSR_WRITE, K.IO]) & (reason % 3 == 1)

    keeps = [None, chosen(summaries[1].pairs["kind"], summaries[1].pairs["reason"]),
             np.zeros(len(summaries[2].pairs), dtype=bool), None]  # fmt: skip
    merged = Aggregate()
    chunk_summary.merge_many(
        merged, [(s, c, k) for c, (s, k) in enumerate(zip(summaries, keeps, strict=True))]
    )
    picked = [parts[0], parts[1][chosen(parts[1]["kind"], parts[1]["reason"])], parts[3]]
    assert 0 < len(picked[1]) < len(parts[1])
    same(merged, aggregated(np.concatenate(picked)))


def test_summaries_of_chunks_add_up_like_the_records(tmp_path: Path) -> None:
    parts = [odd_records(3000, cpu=c, seed=c) for c in (0, 1, 2)]
    path = tmp_path / "s.hvt"
    with TraceWriter(path, {"vendor": 1, "cpus": 3}, chunk_records=700) as w:
        for p in parts:
            w.add(p)
    tf = TraceFile.open(path)
    merged = Aggregate()
    for i in range(len(tf.index)):
        s = tf.chunk_summary(i)
        assert s is not None
        chunk_summary.merge(merged, s, int(tf.index["cpu"][i]))
    same(merged, aggregated(np.concatenate(parts)))


def test_a_summary_is_small_next_to_its_chunk(tmp_path: Path) -> None:
    recs = odd_records(16384)
    raw = chunk_summary.summarize(recs)
    assert raw is not None
    # a few dozen pairs, a few hundred histogram buckets and drill values: far below the records
    assert len(chunk_summary.encode(raw, FLAG_ZSTD)) < 0.02 * len(recs) * RECORD_DTYPE.itemsize


def test_handling_times_the_report_cannot_bucket_leave_the_chunk_unsummarised(tmp_path: Path) -> None:
    recs = odd_records(100)
    recs["tsc"][5], recs["tsc_resume"][5] = 1, (1 << 63) + 5  # a "handling time" of 2^63 ticks
    assert chunk_summary.summarize(recs) is None
    path = tmp_path / "u.hvt"
    with TraceWriter(path, {"vendor": 1, "cpus": 2}) as w:
        w.add(recs)
    tf = TraceFile.open(path)
    assert not tf.has_summary(0)
    assert tf.chunk_summary(0) is None
    assert tf.records().tobytes() == np.sort(recs, order=["tsc", "cpu", "seq"]).tobytes()


def write_one_chunk(path: Path, recs: Records) -> tuple[bytearray, int]:
    with TraceWriter(path, {"vendor": 1, "cpus": 2}) as w:
        w.add(recs)
    return bytearray(path.read_bytes()), int(TraceFile.open(path).index["offset"][0])


def replace_summary(data: bytearray, off: int, raw: bytes) -> bytes:
    """The file with chunk 0's summary replaced by ``raw`` (compressed, CRCs fixed up: the chunk
    passes the open checks)."""
    hdr = list(CHUNK_HEADER.unpack_from(data, off))
    start = off + CHUNK_HEADER.size
    payload = bytes(data[start : start + hdr[9]])
    _frame, _rlen, rest = chunk_summary.split(payload, hdr[3])
    new = chunk_summary.encode(raw, FLAG_ZSTD) + bytes(rest)
    hdr[9], hdr[10] = len(new), zlib.crc32(new)
    body = CHUNK_HEADER.pack(*hdr[:-1], 0)[:-4]
    return (
        bytes(data[:off])
        + body
        + struct.pack("<I", zlib.crc32(body))
        + new
        + bytes(data[start + len(payload) :])
    )


def reindexed(path: Path, blob: bytes) -> TraceFile:
    """The file without its trailer's index (its offsets moved): rebuilt by scanning, as a killed
    capture's."""
    path.write_bytes(blob[: blob.index(b"HVIX")])
    return TraceFile.open(path)


def one_more_in_the_first_bucket(raw: bytes) -> bytes:
    _v, _pad, pairs, hist, _drill = struct.unpack_from("<BBHII", raw)
    at = 12 + pairs * 67 + hist * 2  # the histogram's count column, after its bucket column
    return raw[:at] + struct.pack("<I", struct.unpack_from("<I", raw, at)[0] + 1) + raw[at + 4 :]


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda raw: raw[:-3], "summary tables do not fill it"),
        (one_more_in_the_first_bucket, "a histogram does not count the pair's timed records"),
        (lambda raw: struct.pack("<BBHII", 1, 0, 0, 0, 0), "do not add up to the chunk's records"),
    ],
    ids=["cut", "histogram-count", "no-pairs"],
)
def test_a_damaged_summary_makes_its_chunk_damage_like_a_bad_payload(
    change: Any, why: str, tmp_path: Path
) -> None:
    recs = odd_records(400)
    data, off = write_one_chunk(tmp_path / "a.hvt", recs)
    raw = chunk_summary.summarize(recs)
    assert raw is not None
    tf = reindexed(tmp_path / "b.hvt", replace_summary(data, off, change(raw)))
    assert not tf.damage  # passes the CRCs: found when read
    rep = build_report(tf, jobs=1)
    assert rep["records"] == 0
    assert tf.damage.chunks == 1
    assert tf.damage.records == 400
    assert why in tf.damage.problems[0]
    assert rep["lost_total"] == 400


def test_a_summary_that_does_not_decompress_is_damage(tmp_path: Path) -> None:
    recs = odd_records(400)
    data, off = write_one_chunk(tmp_path / "a.hvt", recs)
    start = off + CHUNK_HEADER.size
    hdr = list(CHUNK_HEADER.unpack_from(data, off))
    data[start + 8 + 6] ^= 0xFF  # inside the zstd frame of the summary (after its 4-byte magic)
    hdr[10] = zlib.crc32(bytes(data[start : start + hdr[9]]))
    body = CHUNK_HEADER.pack(*hdr[:-1], 0)[:-4]
    data[off : off + CHUNK_HEADER.size] = body + struct.pack("<I", zlib.crc32(body))
    (tmp_path / "b.hvt").write_bytes(bytes(data))
    tf = TraceFile.open(tmp_path / "b.hvt")
    with pytest.raises(TraceError, match=r"bad compressed data|wrong payload length"):
        tf.chunk_summary(0)
    assert tf.damage.chunks == 1
    assert tf.damage.records == 400


def test_a_summary_length_beyond_any_chunk_is_refused_before_decompressing() -> None:
    prefix = struct.pack("<II", 4, 1 << 30) + b"abcd"
    with pytest.raises(CodecError, match="implausible summary length"):
        chunk_summary.split(prefix, 10)
    with pytest.raises(CodecError, match="beyond the payload"):
        chunk_summary.split(struct.pack("<II", 99, 10), 10)


def test_a_summary_of_another_version_is_decoded_instead(tmp_path: Path) -> None:
    recs = odd_records(400)
    data, off = write_one_chunk(tmp_path / "a.hvt", recs)
    raw = chunk_summary.summarize(recs)
    assert raw is not None
    tf = reindexed(
        tmp_path / "b.hvt", replace_summary(data, off, bytes([chunk_summary.VERSION + 1]) + raw[1:])
    )
    assert tf.chunk_summary(0) is None
    assert not tf.damage
    with_s, without = build_report(tf, jobs=1), build_report(tf, jobs=1, summaries=False)
    assert with_s == without
    assert with_s["records"] == 400


def test_a_cut_file_reads_its_summaries_up_to_the_last_complete_chunk(tmp_path: Path) -> None:
    path = tmp_path / "cut.hvt"
    with TraceWriter(path, {"vendor": 1, "cpus": 2}, chunk_records=1000) as w:
        w.add(odd_records(4500))
    data = path.read_bytes()
    offsets = TraceFile.open(path).index["offset"]
    cut = tmp_path / "killed.hvt"
    cut.write_bytes(data[: int(offsets[3]) + 100])  # inside chunk 3
    tf = TraceFile.open(cut)
    assert tf.truncated_at == int(offsets[3])
    assert not tf.damage
    rep = build_report(tf, jobs=1)
    assert rep == build_report(tf, jobs=1, summaries=False)
    assert rep["records"] == 3000


def test_columns_of_a_summarised_chunk_skip_its_summary(tmp_path: Path) -> None:
    recs = odd_records(700)
    path = tmp_path / "c.hvt"
    write_one_chunk(path, recs)
    tf = TraceFile.open(path)
    cols = chunk_columns(tf, 0, ("kind", "tsc", "seq"))
    assert tf.has_summary(0)
    assert np.array_equal(cols["tsc"], recs["tsc"])
    assert np.array_equal(cols["seq"], recs["seq"])
    assert tf.read_chunk(0).tobytes() == recs.tobytes()


def test_the_summary_version_pins_the_drill_down_definitions() -> None:
    """Summaries store drill-down values as report_drill derives them: changing DRILLDOWNS or
    drill_key must bump chunk_summary.VERSION (old summaries then fall back to decoding). Update the
    digest together with the version."""
    probe = [0, 5, 0x1B, 0xC0000080, XAPIC_PAGE, XAPIC_PAGE + 0x300, 0xFEE01000, 1 << 40]
    text = repr(sorted((int(k), v) for k, v in DRILLDOWNS.items()))
    text += repr([drill_key(int(k), v) for k in sorted(DRILLDOWNS) for v in probe])
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    assert (chunk_summary.VERSION, digest) == (1, DIGEST_V1)


DIGEST_V1 = "4502f1c721ce8fc5"  # of chunk_summary.VERSION 1


def test_the_raw_summary_is_what_the_docs_say() -> None:
    recs = odd_records(300)
    raw = chunk_summary.summarize(recs)
    assert raw is not None
    version, pad, pairs, hist, drill = struct.unpack_from("<BBHII", raw)
    assert (version, pad) == (chunk_summary.VERSION, 0)
    assert pairs == len(np.unique(recs["kind"].astype(np.uint32) << 16 | recs["reason"]))
    # pair: 1 + 2 + 4 + 4 + 8 * 6 + 4 + 4 bytes; histogram entry 6; drill entry 12
    assert len(raw) == 12 + pairs * 67 + hist * 6 + drill * 12
    assert chunk_codec.decode(chunk_codec.encode(raw, FLAG_ZSTD), FLAG_ZSTD, len(raw)) == raw
    assert FLAG_SUMMARY == 16


def test_a_damaged_summary_found_by_a_worker_is_the_files_damage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(report_scan, "POOL_MIN_CHUNKS", 0)  # a small file: force the workers
    recs = odd_records(400)
    path = tmp_path / "a.hvt"
    with TraceWriter(path, {"vendor": 1, "cpus": 2}, chunk_records=100) as w:
        w.add(recs)
    data, off = bytearray(path.read_bytes()), int(TraceFile.open(path).index["offset"][2])
    raw = chunk_summary.summarize(recs[200:300])
    assert raw is not None
    tf = reindexed(tmp_path / "b.hvt", replace_summary(data, off, raw[:-3]))
    rep = build_report(tf, jobs=2)
    assert rep["records"] == 300
    assert tf.damage.chunks == 1
    assert tf.damage.records == 100
    assert "summary tables do not fill it" in tf.damage.problems[0]
