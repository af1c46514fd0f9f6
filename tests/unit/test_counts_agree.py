"""report, query and export (CSV, Parquet, Perfetto protobuf and JSON) count the same records per
reason and per CPU for the same real capture: the v2 QEMU storm capture and the previous release's v1
capture in tests/data. tests/integration/test_query_qemu.py runs the same comparison on a fresh live
capture."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import duckdb
import pytest
from perfetto.protos.perfetto.trace import perfetto_trace_pb2 as pb

from hvtrace.cli import main
from tests.unit.test_export_perfetto import decode
from tests.unit.test_query import DATA, REAL_V2

Counts = tuple[Counter[tuple[str, str]], Counter[int]]  # per (kind, reason name), per CPU


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(list(argv)) == 0
    return capsys.readouterr().out


def by_report(capsys: pytest.CaptureFixture[str], trace: Path) -> Counts:
    rep = json.loads(run(capsys, "report", "--json", str(trace)))
    reasons = Counter({(r["kind"], r["reason_name"]): r["count"] for r in rep["by_reason"]})
    return reasons, Counter({r["cpu"]: r["count"] for r in rep["by_cpu"]})


def by_query(capsys: pytest.CaptureFixture[str], trace: Path) -> Counts:
    sql = "SELECT kind_name, reason_name, cpu, count(*) n FROM exits GROUP BY ALL"
    rows = json.loads(run(capsys, "query", sql, str(trace), "--format", "json"))
    reasons: Counter[tuple[str, str]] = Counter()
    cpus: Counter[int] = Counter()
    for r in rows:
        reasons[(r["kind_name"], r["reason_name"])] += r["n"]
        cpus[r["cpu"]] += r["n"]
    return reasons, cpus


def by_csv(capsys: pytest.CaptureFixture[str], trace: Path, tmp: Path) -> Counts:
    out = tmp / "x.csv"
    run(capsys, "export", str(trace), "--format", "csv", "-o", str(out))
    with out.open() as fh:
        rows = list(csv.DictReader(fh))
    return Counter((r["kind_name"], r["reason_name"]) for r in rows), Counter(int(r["cpu"]) for r in rows)


def by_parquet(capsys: pytest.CaptureFixture[str], trace: Path, tmp: Path) -> Counts:
    out = tmp / "ds"
    run(capsys, "export", str(trace), "--format", "parquet", "-o", str(out))
    rows = (
        duckdb.connect()
        .execute(
            "SELECT kind_name, reason_name, cpu, count(*) FROM "
            f"read_parquet('{out}/**/*.parquet', hive_partitioning = true) GROUP BY ALL"
        )
        .fetchall()
    )
    reasons: Counter[tuple[str, str]] = Counter()
    cpus: Counter[int] = Counter()
    for kind, reason, cpu, n in rows:
        reasons[(kind, reason)] += n
        cpus[int(cpu)] += n
    return reasons, cpus


def perfetto_names(
    capsys: pytest.CaptureFixture[str], trace: Path, tmp: Path
) -> tuple[Counter[str], Counter[int]]:
    """Perfetto slices are named by reason only; per CPU from the track names."""
    out = tmp / "x.pftrace"
    run(capsys, "export", str(trace), "--format", "perfetto-proto", "-o", str(out))
    d = decode(out)
    names: Counter[str] = Counter()
    cpus: Counter[int] = Counter()
    for uuid, track in d.tracks.items():
        if track.endswith(" exits"):
            cpu = int(track.split()[1])
            for e in d.events:
                if e.track == uuid and e.type != pb.TrackEvent.TYPE_SLICE_END:
                    names[e.name] += 1
                    cpus[cpu] += 1
    return names, cpus


def perfetto_json_names(
    capsys: pytest.CaptureFixture[str], trace: Path, tmp: Path
) -> tuple[Counter[str], Counter[int]]:
    """The JSON's exits: complete events (handling time known) and instants, by name and by track (CPU);
    a v1 file's are all instants, a v2 capture's all complete events."""
    out = tmp / "x.json"
    run(capsys, "export", str(trace), "--format", "perfetto-json", "-o", str(out))
    events = [e for e in json.loads(out.read_text())["traceEvents"] if e["ph"] in ("X", "i")]
    return Counter(e["name"] for e in events), Counter(e["tid"] for e in events)


def check_counts_agree(capsys: pytest.CaptureFixture[str], trace: Path, tmp: Path) -> None:
    reasons, cpus = by_report(capsys, trace)
    assert sum(cpus.values()) > 0
    assert by_query(capsys, trace) == (reasons, cpus)
    assert by_csv(capsys, trace, tmp) == (reasons, cpus)
    assert by_parquet(capsys, trace, tmp) == (reasons, cpus)
    names: Counter[str] = Counter()
    for (_kind, name), n in reasons.items():
        names[name] += n
    assert perfetto_names(capsys, trace, tmp) == (names, cpus)
    assert perfetto_json_names(capsys, trace, tmp) == (names, cpus)


@pytest.mark.parametrize("trace", [REAL_V2, DATA / "trace-v1-svm-2cpu.hvt"], ids=["v2-qemu", "v1-qemu"])
def test_report_query_and_export_agree(
    trace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    check_counts_agree(capsys, trace, tmp_path)
