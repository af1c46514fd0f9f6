"""`hvtrace export --format perfetto-proto`: the output parses with the perfetto package's protos and holds,
per CPU, one slice per exit lasting its handling time (an instant when that is unknown), an exits/s
counter track adding up to the CPU's records, and a marker wherever records were lost.

The test reads the trace the way trace processor does: compressed_packets inflated, each sequence's
incremental clock summed from its ClockSnapshot, track and clock defaults, interned event names.
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from perfetto.protos.perfetto.trace import perfetto_trace_pb2 as pb

from hvtrace.abi import HvRecFlag
from hvtrace.cli import main
from hvtrace.decode.vendor import VMX
from hvtrace.exitcodes import ExitCode
from hvtrace.trace.export_formats import PERFETTO_JSON_MAX
from hvtrace.trace.tracefile import TraceFile, TraceWriter
from tests.unit.test_damaged_files import damage
from tests.unit.test_tracefile import make_records

HZ = 1_000_000_000  # 1 tick = 1 ns: expected times are the TSC values themselves


@dataclass
class Event:
    ts: int
    type: int
    track: int
    name: str


@dataclass
class Decoded:
    tracks: dict[int, str] = field(default_factory=dict)  # uuid -> name
    counters: set[int] = field(default_factory=set)
    events: list[Event] = field(default_factory=list)
    values: dict[int, list[tuple[int, float]]] = field(default_factory=lambda: defaultdict(list))

    def on(self, track_name: str) -> list[Event]:
        uuid = next(u for u, n in self.tracks.items() if n == track_name)
        return [e for e in self.events if e.track == uuid]


def packets(path: Path) -> list[pb.TracePacket]:
    out: list[pb.TracePacket] = []
    for p in pb.Trace.FromString(path.read_bytes()).packet:
        if p.HasField("compressed_packets"):
            out += pb.Trace.FromString(zlib.decompress(p.compressed_packets)).packet
        else:
            out.append(p)
    return out


def decode(path: Path) -> Decoded:
    d = Decoded()
    clocks: dict[tuple[int, int], tuple[int, bool]] = {}  # (sequence, clock id) -> (now, incremental)
    defaults: dict[int, pb.TracePacketDefaults] = {}
    names: dict[tuple[int, int], str] = {}
    for p in packets(path):
        seq = p.trusted_packet_sequence_id
        if p.HasField("track_descriptor"):
            d.tracks[p.track_descriptor.uuid] = p.track_descriptor.name
            if p.track_descriptor.HasField("counter"):
                d.counters.add(p.track_descriptor.uuid)
        if p.HasField("clock_snapshot"):
            for c in p.clock_snapshot.clocks:
                clocks[(seq, c.clock_id)] = (c.timestamp, c.is_incremental)
        if p.HasField("trace_packet_defaults"):
            defaults[seq] = p.trace_packet_defaults
        for n in p.interned_data.event_names:
            names[(seq, n.iid)] = n.name
        if not p.HasField("track_event"):
            continue
        dflt = defaults.get(seq)
        clock = p.timestamp_clock_id or (dflt.timestamp_clock_id if dflt else 0)
        ts = p.timestamp
        if clock >= 64:
            now, incremental = clocks[(seq, clock)]
            assert incremental
            ts = now + p.timestamp
            clocks[(seq, clock)] = (ts, True)
        te = p.track_event
        track = te.track_uuid or (dflt.track_event_defaults.track_uuid if dflt else 0)
        name = te.name or names.get((seq, te.name_iid), "")
        if te.type == pb.TrackEvent.TYPE_COUNTER:
            d.values[track].append((ts, te.double_counter_value))
        else:
            d.events.append(Event(ts, te.type, track, name))
    return d


def write(path: Path) -> dict[int, np.ndarray]:
    """2 CPUs x 3000 records in chunks of 512; CPU 0 loses 7 records between chunks, CPU 1 has a record
    flagged DROPPED_BEFORE and 3 records lost after its last one (a loss-only chunk)."""
    recs = {}
    for cpu in (0, 1):
        r = make_records(cpu, 3000, 1000 + cpu * 3, 1000)
        r["tsc_resume"] = r["tsc"] + 200 + (np.arange(3000) % 50)
        r["tsc_resume"][::100] = 0  # unknown handling time: an instant
        r["reason"] = np.where(np.arange(3000) % 4 == 0, 30, 10)
        recs[cpu] = r
    recs[1]["flags"][1700] = HvRecFlag.DROPPED_BEFORE
    meta = {"vendor": 1, "vendor_name": "VMX", "cpus": 2, "tsc_hz": HZ}
    with TraceWriter(path, meta, chunk_records=512) as w:
        w.add(np.concatenate([recs[0][:1024], recs[1]]))
        w.note_lost(0, 7)
        w.add(recs[0][1024:])
        w.note_lost(1, 3)
    return recs


def export(path: Path, out: Path, capsys: pytest.CaptureFixture[str], fmt: str = "perfetto-proto") -> int:
    code = main(["export", str(path), "--format", fmt, "-o", str(out)])
    capsys.readouterr()
    return code


def test_slices_counters_and_loss_markers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "t.hvt"
    recs = write(src)
    out = tmp_path / "t.pftrace"
    assert export(src, out, capsys) == 0
    d = decode(out)
    for cpu, r in recs.items():
        events = d.on(f"CPU {cpu} exits")
        known = r["tsc_resume"] != 0
        begins = [e for e in events if e.type == pb.TrackEvent.TYPE_SLICE_BEGIN]
        ends = [e for e in events if e.type == pb.TrackEvent.TYPE_SLICE_END]
        instants = [e for e in events if e.type == pb.TrackEvent.TYPE_INSTANT]
        assert len(begins) == len(ends) == int(known.sum())
        assert len(instants) == int((~known).sum())
        starts = [e for e in events if e.type != pb.TrackEvent.TYPE_SLICE_END]
        assert [e.ts for e in starts] == (r["tsc"] - 1000).tolist()  # ns since the first TSC
        assert [e.name for e in starts] == [VMX.reason_name(int(x)) for x in r["reason"]]
        durations = [e.ts - b.ts for b, e in zip(begins, ends, strict=True)]
        assert durations == (r["tsc_resume"][known] - r["tsc"][known]).tolist()
        rate = f"CPU {cpu} exits/s"
        uuid = next(u for u, n in d.tracks.items() if n == rate)
        assert uuid in d.counters
        points = d.values[uuid]
        width = points[1][0] - points[0][0]
        assert round(sum(v for _, v in points) * width / 1e9) == len(r)
    loss0 = d.on("CPU 0 lost records")
    assert [e.name for e in loss0] == ["7 records lost"]
    assert loss0[0].ts == int(recs[0]["tsc"][1024]) - 1000  # where the next chunk resumes
    loss1 = sorted(d.on("CPU 1 lost records"), key=lambda e: e.ts)
    assert [e.name for e in loss1] == ["records dropped before this exit", "3 records lost"]
    assert loss1[0].ts == int(recs[1]["tsc"][1700]) - 1000


def test_a_damaged_chunk_is_a_loss_marker(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "t.hvt"
    write(src)
    bad = damage(src, tmp_path / "bad.hvt", payload_of=(1,))
    row = TraceFile.open(src).index[1]
    out = tmp_path / "bad.pftrace"
    assert export(bad, out, capsys) == ExitCode.DAMAGED
    markers = decode(out).on(f"CPU {int(row['cpu'])} lost records")
    damaged = [e for e in markers if e.name == f"{int(row['count'])} records in a damaged chunk (skipped)"]
    assert [e.ts for e in damaged] == [int(row["first_tsc"]) - 1000]


def test_perfetto_picks_the_protobuf_for_large_captures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "t.hvt"
    write(src)
    small = tmp_path / "small.out"
    assert export(src, small, capsys, "perfetto") == 0
    assert small.read_bytes().startswith(b"{")  # 6000 records: JSON
    big = tmp_path / "big.hvt"
    with TraceWriter(big, {"vendor": 1, "vendor_name": "VMX", "cpus": 1, "tsc_hz": HZ}) as w:
        w.add(make_records(0, PERFETTO_JSON_MAX + 1))
    out = tmp_path / "big.out"
    assert export(big, out, capsys, "perfetto") == 0
    assert len(decode(out).on("CPU 0 exits")) == PERFETTO_JSON_MAX + 1  # no handling time: instants


def test_a_damaged_first_chunk_is_marked_at_the_timeline_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Chunk 0 (CPU 0, first TSC 1000) damaged: the timeline starts at CPU 1's first record (1003), before
    which the damaged chunk began; its marker sits at 0, never at a negative (unencodable) timestamp."""
    src = tmp_path / "t.hvt"
    write(src)
    bad = damage(src, tmp_path / "bad.hvt", payload_of=(0,))
    row = TraceFile.open(src).index[0]
    assert int(row["first_tsc"]) == 1000
    out = tmp_path / "bad.pftrace"
    assert export(bad, out, capsys) == ExitCode.DAMAGED
    markers = decode(out).on(f"CPU {int(row['cpu'])} lost records")
    damaged = [e for e in markers if e.name == f"{int(row['count'])} records in a damaged chunk (skipped)"]
    assert [e.ts for e in damaged] == [0]
