"""`hvtrace export`: Chrome trace JSON (Perfetto loads it; one track per CPU), CSV and Parquet."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from hvtrace.decode.record_meaning import kind_name
from hvtrace.decode.vendor import vendor_of
from hvtrace.exitcodes import ExitCode
from hvtrace.symbols import SymbolTable, symbol_column
from hvtrace.trace.errors import TraceError
from hvtrace.trace.records import Records
from hvtrace.trace.tracefile import TraceFile

FORMATS = ("perfetto", "csv", "parquet")
#: Extra per-record columns (name -> one value per record), e.g. ``symbol``.
Extra = dict[str, Any] | None
COLUMNS = ("seq", "tsc", "cpu", "kind", "flags", "reason", "insn_len", "qual", "rip", "gpa", "arg0", "arg1")


def _names(recs: Records, vendor: int) -> tuple[list[str], list[str]]:
    """Kind and native reason names per record, through a lookup table (vectorised)."""
    kinds = np.array([kind_name(k) for k in range(256)], dtype=object)
    backend = vendor_of(vendor)
    uniq, inv = np.unique(recs["reason"], return_inverse=True)
    rnames = np.array([backend.reason_name(int(u)) for u in uniq], dtype=object)
    return list(kinds[recs["kind"]]), list(rnames[inv])


def export_perfetto(tf: TraceFile, recs: Records, out: Path, extra: Extra = None) -> int:
    """Chrome trace JSON: an instant event per exit on a track per CPU; ts in µs when the TSC rate is known,
    else in TSC ticks (displayed as µs)."""
    vendor = int(tf.meta.get("vendor") or 0)
    hz = tf.meta.get("tsc_hz")
    t0 = int(recs["tsc"].min()) if len(recs) else 0
    ts = (recs["tsc"] - np.uint64(t0)).astype(np.float64)
    if hz:
        ts = ts * (1e6 / hz)
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
    tsl = ts.tolist()
    more = {k: list(v) for k, v in (extra or {}).items()}
    for i in range(len(recs)):
        events.append(
            {
                "name": rnames[i],
                "cat": kinds[i],
                "ph": "i",
                "s": "t",
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
                    **{k: v[i] for k, v in more.items()},
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


def _table(tf: TraceFile, recs: Records, extra: Extra = None) -> dict[str, Any]:
    kinds, rnames = _names(recs, int(tf.meta.get("vendor") or 0))
    cols: dict[str, Any] = {c: recs[c] for c in COLUMNS}
    cols["kind_name"] = kinds
    cols["reason_name"] = rnames
    cols.update({k: list(v) for k, v in (extra or {}).items()})
    return cols


def export_csv(tf: TraceFile, recs: Records, out: Path, extra: Extra = None) -> int:
    cols = _table(tf, recs, extra)
    names = list(cols)
    with out.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(names)
        w.writerows(
            zip(*[c.tolist() if isinstance(c, np.ndarray) else c for c in cols.values()], strict=True)
        )
    return len(recs)


def export_parquet(tf: TraceFile, recs: Records, out: Path, extra: Extra = None) -> int:
    cols = _table(tf, recs, extra)
    table = pa.table(
        {k: (pa.array(v) if isinstance(v, np.ndarray) else pa.array(v, pa.string())) for k, v in cols.items()}
    )
    table = table.replace_schema_metadata({"hvtrace": json.dumps(tf.meta)})
    pq.write_table(table, out)
    return len(recs)


def export(src: Path | TraceFile, fmt: str, out: Path, *, symbols: SymbolTable | None = None) -> int:
    """Export every readable record of a trace file; returns the record count. Skipped (damaged)
    chunks are in ``tf.errors``; the caller reports them (hvtrace.trace.cli.warn_damage). With
    ``symbols`` (its slide already set) each record gets a ``symbol`` column / arg (``name+0xoff``)."""
    if fmt not in FORMATS:
        raise TraceError(ExitCode.USAGE, f"unknown export format {fmt!r} (choose {', '.join(FORMATS)})")
    tf = src if isinstance(src, TraceFile) else TraceFile.open(Path(src))
    recs = tf.records()
    fn = {"perfetto": export_perfetto, "csv": export_csv, "parquet": export_parquet}[fmt]
    try:
        return fn(tf, recs, Path(out), symbol_column(recs, symbols))
    except OSError as e:  # checked before, but a disk can fill up or the directory vanish meanwhile
        raise TraceError(ExitCode.CANT_CREATE, f"cannot write {out}: {e.strerror or e}") from None
