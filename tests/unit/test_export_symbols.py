"""`export --symbols`: every format carries each record's ``symbol+0xoff`` (the slide already applied),
"" where no symbol holds the RIP; without symbols there is no such column."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from hvtrace.abi import HvExitKind
from hvtrace.symbols import load, symbolizer
from hvtrace.trace.export import export
from hvtrace.trace.records import RECORD_DTYPE
from hvtrace.trace.tracefile import TraceFile, TraceWriter

LINK = 0xFFFF_FFFF_8100_0000
SLIDE = 0x4000_0000 - 0x20_0000


def trace(tmp_path: Path) -> TraceFile:
    recs = np.zeros(3, dtype=RECORD_DTYPE)
    recs["seq"] = [1, 2, 3]
    recs["tsc"] = [10, 20, 30]
    recs["kind"] = HvExitKind.CPUID
    recs["rip"] = [LINK + SLIDE + 0x10, 0x401000, LINK + SLIDE + 0x104]
    p = tmp_path / "t.hvt"
    with TraceWriter(p, {"vendor": 2, "cpus": 1}) as w:
        w.add(recs)
    return TraceFile.open(p)


def test_every_format_has_the_symbol(tmp_path: Path) -> None:
    smap = tmp_path / "System.map"
    names = {0: "native_cpuid", 0x100: "native_read_msr", 0x200: "x"}
    smap.write_text("".join(f"{LINK + off:016x} T {name}\n" for off, name in names.items()))
    table = load(smap)
    table.slide = SLIDE
    tf = trace(tmp_path)
    want = ["native_cpuid+0x10", "", "native_read_msr+0x4"]

    symbolize = symbolizer(table)
    export(tf, "csv", tmp_path / "t.csv", symbolize)
    with (tmp_path / "t.csv").open() as fh:
        assert [r["symbol"] for r in csv.DictReader(fh)] == want

    export(tf, "parquet", tmp_path / "t.parquet", symbolize)
    got = pq.read_table(tmp_path / "t.parquet").column("symbol").to_pylist()
    assert got == [w or None for w in want]  # a RIP outside every symbol is NULL in Parquet

    export(tf, "perfetto-json", tmp_path / "t.json", symbolize)
    events = json.loads((tmp_path / "t.json").read_text())["traceEvents"]
    assert [e["args"]["symbol"] for e in events if e.get("ph") == "i"] == want

    export(tf, "csv", tmp_path / "plain.csv")
    with (tmp_path / "plain.csv").open() as fh:
        assert "symbol" not in next(csv.reader(fh))
