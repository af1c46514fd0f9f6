"""`hvtrace export --format perfetto-proto`: Perfetto's protobuf trace format, written with the protos of
the ``perfetto`` package (perfetto.protos ... perfetto_trace_pb2), never by hand.

What it holds:
- per CPU, a track "CPU n exits" with one slice per exit, named by its reason, lasting its handling time
  (tsc .. tsc_resume); an exit whose handling time is unknown (v1 file, not resumed) is an instant;
- per CPU, a counter track "CPU n exits/s" (exits per second in fixed bins, about 2,000 over the capture);
- per CPU, a track "CPU n lost records" with an instant wherever records were lost: a chunk's
  ``lost_before`` count, a record flagged DROPPED_BEFORE, a damaged chunk skipped.

Size: each CPU's slices are on their own packet sequence with a sequence-scoped incremental clock (each
packet carries the nanoseconds since the previous one), sequence defaults (track, clock) and interned
reason names; every chunk's packets are deflated into one ``compressed_packets`` packet, which trace
processor and the UI inflate (TracePacket.compressed_packets, the service's own compression).
Times are nanoseconds since the capture's first TSC when the TSC rate is known, else TSC ticks.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
from perfetto.protos.perfetto.trace import perfetto_trace_pb2 as pb

from hvtrace.abi import HvRecFlag
from hvtrace.trace.exit_batches import ExitBatches, first_tsc
from hvtrace.trace.records import Records
from hvtrace.trace.tracefile import TraceFile

SEQ_GLOBAL = 1  # descriptors, counters and loss markers (absolute BOOTTIME timestamps)
CLOCK_INCREMENTAL = 64  # first sequence-scoped clock id (ClockSnapshot.Clock.clock_id 64..127)
BOOTTIME = 6  # ClockSnapshot.Clock.BOOTTIME: the default clock of packets without timestamp_clock_id
COUNTER_BINS = 2000
_CLEARED = pb.TracePacket.SEQ_INCREMENTAL_STATE_CLEARED
_NEEDS = pb.TracePacket.SEQ_NEEDS_INCREMENTAL_STATE
_BEGIN, _END = pb.TrackEvent.TYPE_SLICE_BEGIN, pb.TrackEvent.TYPE_SLICE_END
_INSTANT, _COUNTER = pb.TrackEvent.TYPE_INSTANT, pb.TrackEvent.TYPE_COUNTER


def slice_track(cpu: int) -> int:
    return 16 + 4 * cpu


def rate_track(cpu: int) -> int:
    return 17 + 4 * cpu


def loss_track(cpu: int) -> int:
    return 18 + 4 * cpu


def cpu_sequence(cpu: int) -> int:
    return 2 + cpu


@dataclass
class _Cpu:
    """One CPU's packet sequence: where its incremental clock stands and the names it interned."""

    cpu: int
    now: int = 0  # ns of the last timestamp written on the sequence
    names: set[int] = field(default_factory=set)
    started: bool = False


class PerfettoWriter:
    """Stream one trace file's records into a Perfetto protobuf trace."""

    def __init__(self, tf: TraceFile, fh: IO[bytes]) -> None:
        self.tf = tf
        self.fh = fh
        self.src = ExitBatches(tf, str(tf.path))
        hz = tf.meta.get("tsc_hz")
        self.scale = 1e9 / float(hz) if hz else 1.0
        self.t0 = first_tsc(tf) or 0
        rows = [i for i in range(len(tf.index)) if int(tf.index["count"][i])]
        last = max((int(tf.index["last_tsc"][i]) for i in rows), default=self.t0)
        self.span_ns = max(1, int(self.ns(np.array([last], np.uint64))[0]) + 1)
        self.bin_ns = max(1, -(-self.span_ns // COUNTER_BINS))
        self.bins: dict[int, np.ndarray[Any, np.dtype[np.int64]]] = {}
        self.cpus: dict[int, _Cpu] = {}
        self.name_iid: dict[str, int] = {}
        self.losses: list[tuple[int, int, str]] = []  # (cpu, ns, marker name)
        self.exits = 0
        self._templates: dict[tuple[int, bool | None, int], pb.TracePacket] = {}

    def ns(self, tsc: np.ndarray[Any, Any]) -> np.ndarray[Any, np.dtype[np.int64]]:
        """TSC values as ns since the capture's first TSC (ticks when the rate is unknown)."""
        d = tsc.astype(np.int64) - np.int64(self.t0)
        return (d * self.scale).astype(np.int64) if self.scale != 1.0 else d

    def _write(self, trace: pb.Trace, *, compress: bool) -> None:
        blob = trace.SerializeToString()
        if compress:
            blob = pb.Trace(
                packet=[pb.TracePacket(compressed_packets=zlib.compress(blob, 6))]
            ).SerializeToString()
        self.fh.write(blob)

    def descriptors(self) -> None:
        vendor = self.tf.meta.get("vendor_name") or "?"
        tr = pb.Trace()
        root = tr.packet.add(trusted_packet_sequence_id=SEQ_GLOBAL)
        root.track_descriptor.uuid = 1
        root.track_descriptor.name = f"hvtrace {vendor} ({self.tf.path.name})"
        for cpu in self.tf.cpus:
            for uuid, name in ((slice_track(cpu), "exits"), (rate_track(cpu), "exits/s"),
                               (loss_track(cpu), "lost records")):  # fmt: skip
                d = tr.packet.add(trusted_packet_sequence_id=SEQ_GLOBAL).track_descriptor
                d.uuid, d.parent_uuid, d.name = uuid, 1, f"CPU {cpu} {name}"
                if name == "exits/s":
                    d.counter.unit_name = "exits/s"
        self._write(tr, compress=False)

    def _start(self, st: _Cpu, tr: pb.Trace) -> None:
        """The sequence's first packets: its incremental clock (0 = BOOTTIME 0) and its defaults."""
        seq = cpu_sequence(st.cpu)
        p = tr.packet.add(trusted_packet_sequence_id=seq, sequence_flags=_CLEARED, timestamp=0)
        p.clock_snapshot.clocks.add(clock_id=CLOCK_INCREMENTAL, timestamp=0, is_incremental=True)
        p.clock_snapshot.clocks.add(clock_id=BOOTTIME, timestamp=0)
        d = tr.packet.add(trusted_packet_sequence_id=seq, sequence_flags=_NEEDS).trace_packet_defaults
        d.timestamp_clock_id = CLOCK_INCREMENTAL
        d.track_event_defaults.track_uuid = slice_track(st.cpu)
        st.started = True

    def _template(self, cpu: int, known: bool | None, iid: int) -> pb.TracePacket:
        """The packet of an exit's start (a slice's begin when ``known``, else an instant) or, with
        ``known`` None, of a slice's end; the caller sets its timestamp."""
        key = (cpu, known, iid)
        t = self._templates.get(key)
        if t is None:
            t = pb.TracePacket(trusted_packet_sequence_id=cpu_sequence(cpu))
            if known is None:
                t.track_event.type = _END
            else:
                t.sequence_flags = _NEEDS
                t.track_event.type = _BEGIN if known else _INSTANT
                t.track_event.name_iid = iid
            self._templates[key] = t
        return t

    def add_chunk(self, chunk: int, recs: Records) -> None:
        cpu = int(recs["cpu"][0])
        st = self.cpus.setdefault(cpu, _Cpu(cpu))
        recs = recs[np.argsort(recs["tsc"], kind="stable")]
        begin = np.maximum(self.ns(recs["tsc"]), st.now)  # a sequence's clock only moves forward
        begin = np.maximum.accumulate(begin)
        resume = recs["tsc_resume"]
        known = (resume != 0) & (resume >= recs["tsc"])
        nxt = np.append(begin[1:], np.iinfo(np.int64).max)
        end = np.minimum(np.maximum(self.ns(resume), begin), nxt)  # slices of one CPU never overlap
        names = self.src.reason_names(recs)
        iids = [self.name_iid.setdefault(n, len(self.name_iid) + 1) for n in names]
        tr = pb.Trace()
        if not st.started:
            self._start(st, tr)
        # each packet's timestamp: ns since the previous packet of the sequence (its incremental clock)
        last = np.where(known, end, begin)
        since = begin - np.concatenate(([st.now], last[:-1]))
        lasting = end - begin
        packets = tr.packet
        first = len(packets)
        for b, e, k, iid in zip(since.tolist(), lasting.tolist(), known.tolist(), iids, strict=True):
            p = packets.add()
            p.CopyFrom(self._template(cpu, k, iid))  # copying a made packet beats setting its fields
            p.timestamp = b
            if k:
                p = packets.add()
                p.CopyFrom(self._template(cpu, None, 0))
                p.timestamp = e
        new = [i for i in dict.fromkeys(iids) if i not in st.names]
        if new:  # interned in the chunk's first event: valid from it on
            inv = {v: n for n, v in self.name_iid.items()}
            for i in new:
                packets[first].interned_data.event_names.add(iid=i, name=inv[i])
            st.names.update(new)
        st.now = int(last[-1])
        self._write(tr, compress=True)
        self.exits += len(recs)
        counts = np.bincount(begin // self.bin_ns, minlength=COUNTER_BINS + 1)
        acc = self.bins.setdefault(cpu, np.zeros(len(counts), np.int64))
        if len(counts) > len(acc):
            acc = self.bins[cpu] = np.concatenate([acc, np.zeros(len(counts) - len(acc), np.int64)])
        acc[: len(counts)] += counts
        self._note_losses(chunk, cpu, recs, begin)

    def _note_losses(self, chunk: int, cpu: int, recs: Records, begin: np.ndarray[Any, Any]) -> None:
        lost = int(self.tf.index["lost_before"][chunk])
        at_chunk = int(begin[0]) if len(begin) else None
        if lost:
            self.losses.append((cpu, at_chunk or 0, f"{lost} records lost"))
        flagged = np.flatnonzero(recs["flags"] & HvRecFlag.DROPPED_BEFORE)
        for i in flagged.tolist():
            if not (lost and i == 0):  # the chunk's own marker already says it
                self.losses.append((cpu, int(begin[i]), "records dropped before this exit"))

    def note_empty_and_damaged(self) -> None:
        """Loss-only chunks (no record) and chunks skipped as damaged: a marker where they were."""
        idx = self.tf.index
        bad = {e.index: e for e in self.tf.errors if e.index is not None}
        for i in range(len(idx)):
            cpu, lost = int(idx["cpu"][i]), int(idx["lost_before"][i])
            t = int(self.ns(np.array([idx["first_tsc"][i]], np.uint64))[0]) if int(idx["count"][i]) else 0
            if i in bad:
                # a damaged chunk's times are unverified and it may precede every intact record (the
                # timeline's 0): its marker is kept inside the timeline, timestamps being unsigned
                n = bad[i].records
                at = min(max(t, 0), self.span_ns)
                self.losses.append((cpu, at, f"{n} records in a damaged chunk (skipped)"))
            elif not int(idx["count"][i]) and lost:
                self.losses.append(
                    (cpu, self.cpus[cpu].now if cpu in self.cpus else 0, f"{lost} records lost")
                )

    def counters_and_losses(self) -> None:
        tr = pb.Trace()
        for cpu, acc in sorted(self.bins.items()):
            per_s = acc * (1e9 / self.bin_ns)
            for b, v in enumerate(per_s.tolist()):
                p = tr.packet.add(timestamp=b * self.bin_ns, trusted_packet_sequence_id=SEQ_GLOBAL)
                p.track_event.type, p.track_event.track_uuid = _COUNTER, rate_track(cpu)
                p.track_event.double_counter_value = v
        for cpu, t, name in sorted(self.losses):
            p = tr.packet.add(timestamp=t, trusted_packet_sequence_id=SEQ_GLOBAL)
            p.track_event.type, p.track_event.track_uuid, p.track_event.name = _INSTANT, loss_track(cpu), name
        self._write(tr, compress=True)


def export_perfetto_proto(tf: TraceFile, out: Path) -> int:
    """Write the protobuf trace; returns the number of exits written."""
    with Path(out).open("wb") as fh:
        w = PerfettoWriter(tf, fh)
        w.descriptors()
        for chunk, recs in w.src.chunks():
            w.add_chunk(chunk, recs)
        w.note_empty_and_damaged()
        w.counters_and_losses()
    return w.exits
