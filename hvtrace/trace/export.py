"""`hvtrace export`: Perfetto (protobuf: hvtrace.trace.export_perfetto; or Chrome trace JSON, one track
per CPU), CSV, and a partitioned Parquet dataset (hvtrace.trace.export_parquet).

``--format perfetto`` picks the protobuf for captures of more than PERFETTO_JSON_MAX records and the JSON
below: the JSON costs ~200 bytes a record (474 k records made 96 MB) and holds exits only (complete events
lasting their handling time, instants when it is unknown), the protobuf ~4 bytes a record with
durations, rate counters and loss markers. ``perfetto-proto`` and
``perfetto-json`` choose one explicitly.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from hvtrace.decode.record_meaning import kind_name
from hvtrace.decode.vendor import vendor_of
from hvtrace.exitcodes import ExitCode
from hvtrace.trace.errors import TraceError
from hvtrace.trace.exit_batches import ExitBatches, Symbolize
from hvtrace.trace.export_formats import FORMATS, PERFETTO_JSON_MAX
from hvtrace.trace.export_parquet import export_parquet
from hvtrace.trace.export_perfetto import export_perfetto_proto
from hvtrace.trace.records import Records
from hvtrace.trace.tracefile import TraceFile

CSV_BLOCK = 1 << 16


def _names(recs: Records, vendor: int) -> tuple[list[str], list[str]]:
    """Kind and native reason names per record, through a lookup table (vectorised)."""
    kinds = np.array([kind_name(k) for k in range(256)], dtype=object)
    backend = vendor_of(vendor)
    uniq, inv = np.unique(recs["reason"], return_inverse=True)
    rnames = np.array([backend.reason_name(int(u)) for u in uniq], dtype=object)
    return list(kinds[recs["kind"]]), list(rnames[inv])


def export_perfetto(tf: TraceFile, recs: Records, out: Path, symbolize: Symbolize | None = None) -> int:
    """Chrome trace JSON, a track per CPU: an exit whose handling time is known (resumed: tsc_resume != 0,
    not before its tsc) is a complete event ("ph": "X") lasting tsc_resume - tsc; one with an unknown
    handling time (v1 file, not resumed) is an instant ("ph": "i"). ts and dur in µs when the TSC rate
    is known, else in TSC ticks (displayed as µs). ``symbolize``: each event's args get ``symbol``."""
    vendor = int(tf.meta.get("vendor") or 0)
    hz = tf.meta.get("tsc_hz")
    t0 = int(recs["tsc"].min()) if len(recs) else 0
    ts = (recs["tsc"] - np.uint64(t0)).astype(np.float64)
    resume = recs["tsc_resume"]
    known = (resume != 0) & (resume >= recs["tsc"])
    dur = np.where(known, resume - recs["tsc"], 0).astype(np.float64)
    if hz:
        ts = ts * (1e6 / hz)
        dur = dur * (1e6 / hz)
    kinds, rnames = _names(recs, vendor)
    events: list[dict[str, Any]] = [
        {
            "ph": "M",
            "pid": 1,
            "name": "process_name",
            "args": {"name": f"hvtrace {tf.meta.get('vendor_name')}"},
        }
    ]
    for cpu in sorted({int(c) for c in recs["cpu"]}):
        events.append(
            {"ph": "M", "pid": 1, "tid": cpu, "name": "thread_name", "args": {"name": f"CPU {cpu}"}}
        )
    cols = {c: recs[c].tolist() for c in ("seq", "cpu", "qual", "rip", "gpa", "arg0", "arg1")}
    tsl, durl, knownl = ts.tolist(), dur.tolist(), known.tolist()
    symbols = list(symbolize(recs)) if symbolize is not None else None
    for i in range(len(recs)):
        events.append(
            {
                "name": rnames[i],
                "cat": kinds[i],
                **({"ph": "X", "dur": durl[i]} if knownl[i] else {"ph": "i", "s": "t"}),
                "pid": 1,
                "tid": cols["cpu"][i],
                "ts": tsl[i],
                "args": {
                    "seq": cols["seq"][i],
                    "rip": hex(cols["rip"][i]),
                    "qual": hex(cols["qual"][i]),
                    "gpa": hex(cols["gpa"][i]),
                    "arg0": hex(cols["arg0"][i]),
                    "arg1": hex(cols["arg1"][i]),
                    **({"symbol": symbols[i] or ""} if symbols is not None else {}),
                },
            }
        )
    doc = {
        "traceEvents": events,
        "displayTimeUnit": "ns",
        "otherData": {
            "tsc_hz": hz,
            "time_unit": "us" if hz else "TSC ticks",
            **{k: str(v) for k, v in tf.meta.items()},
        },
    }
    out.write_text(json.dumps(doc))
    return len(recs)


def export_csv(tf: TraceFile, recs: Records, out: Path, symbolize: Symbolize | None = None) -> int:
    """CSV in time order with the columns of `hvtrace query`'s ``exits`` (names as plain text, NULL as
    an empty field), converted in blocks."""
    src = ExitBatches(tf, str(tf.path), symbolize)
    schema = pa.schema(
        [pa.field(f.name, pa.string()) if pa.types.is_dictionary(f.type) else f for f in src.schema]
    )
    with pacsv.CSVWriter(out, schema) as w:
        for i in range(0, len(recs), CSV_BLOCK):
            w.write_batch(src.batch(recs[i : i + CSV_BLOCK]).cast(schema))
    return len(recs)


def perfetto_kind(fmt: str, records: int) -> str:
    """The format ``--format perfetto`` means for a capture of ``records`` records."""
    if fmt != "perfetto":
        return fmt
    return "perfetto-proto" if records > PERFETTO_JSON_MAX else "perfetto-json"


def export(
    src: Path | TraceFile | Sequence[TraceFile],
    fmt: str,
    out: Path,
    symbolize: Symbolize | None = None,
) -> int:
    """Export every readable record of one trace file (Parquet: of one or several); returns the record
    count. Skipped (damaged) chunks are in each file's ``errors``; the caller reports them
    (hvtrace.trace.cli.warn_damage). ``symbolize`` adds a ``symbol`` column (CSV and Parquet) or event
    arg (Perfetto JSON; the protobuf names slices by reason only)."""
    if fmt not in FORMATS:
        raise TraceError(ExitCode.USAGE, f"unknown export format {fmt!r} (choose {', '.join(FORMATS)})")
    if isinstance(src, TraceFile):
        files = [src]
    elif isinstance(src, str | Path):
        files = [TraceFile.open(Path(src))]
    else:
        files = list(src)
    if len(files) != 1 and fmt != "parquet":
        raise TraceError(ExitCode.USAGE, f"--format {fmt} exports one trace file ({len(files)} given)")
    try:
        if fmt == "parquet":
            return export_parquet(files, Path(out), symbolize)
        tf = files[0]
        fmt = perfetto_kind(fmt, tf.record_count)
        if fmt == "perfetto-proto":
            return export_perfetto_proto(tf, Path(out))
        if fmt == "perfetto-json":
            return export_perfetto(tf, tf.records(), Path(out), symbolize)
        return export_csv(tf, tf.records(), Path(out), symbolize)
    except OSError as e:  # checked before, but a disk can fill up or the directory vanish meanwhile
        raise TraceError(ExitCode.CANT_CREATE, f"cannot write {out}: {e.strerror or e}") from None
