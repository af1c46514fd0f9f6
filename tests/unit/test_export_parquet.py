"""`hvtrace export --format parquet`: a Hive-partitioned dataset that DuckDB and pyarrow read back as it
is, with the record counts per CPU and per capture, standard types only. (Polars is not installed here:
no test of it rather than a skipped one.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from hvtrace.cli import main
from hvtrace.exitcodes import ExitCode
from hvtrace.trace.export import export as export_api
from hvtrace.trace.records import Records
from hvtrace.trace.tracefile import TraceFile, TraceWriter
from tests.unit.test_query import REAL_V2, write_v2


def export(capsys: pytest.CaptureFixture[str], out: Path, *files: Path) -> tuple[int, str, str]:
    code = main(["export", "--format", "parquet", "-o", str(out), *map(str, files)])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def sql(text: str) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = duckdb.connect().execute(text).fetchall()
    return rows


def per_cpu(path: Path) -> dict[int, int]:
    cpus = TraceFile.open(path).records()["cpu"].tolist()
    return {c: cpus.count(c) for c in set(cpus)}


def test_one_capture_is_partitioned_by_cpu(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ds"
    code, stdout, _ = export(capsys, out, REAL_V2)
    assert code == 0
    assert "exported 4000 records" in stdout
    assert sorted(p.name for p in out.iterdir()) == ["cpu=0", "cpu=1"]
    want = per_cpu(REAL_V2)
    got = sql(
        f"SELECT cpu, count(*) FROM read_parquet('{out}/**/*.parquet', hive_partitioning = true) GROUP BY cpu"
    )
    assert dict(got) == want
    table = ds.dataset(out, format="parquet", partitioning="hive").to_table()
    assert table.num_rows == 4000
    assert {"reason_name", "kind_name", "handling_ticks", "handling_s", "t_s", "file", "cr3"} <= set(
        table.column_names
    )
    # no extension types: every column is a plain Arrow / Parquet type
    schema = pq.read_schema(next(out.glob("cpu=0/*.parquet")))
    assert all(not isinstance(f.type, pa.ExtensionType) for f in schema)
    assert schema.field("rip").type == pa.uint64()
    reasons = sql(
        f"SELECT reason_name, count(*) n FROM '{out}/**/*.parquet' GROUP BY 1 ORDER BY n DESC LIMIT 1"
    )
    assert reasons == [("CPUID", 3890)]


def test_several_captures_are_partitioned_by_capture_then_cpu(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = write_v2(tmp_path / "a.hvt")
    b_dir = tmp_path / "b"
    b_dir.mkdir()
    b = write_v2(b_dir / "a.hvt")  # the same stem: named apart
    out = tmp_path / "ds"
    code, stdout, _ = export(capsys, out, a, b, REAL_V2)
    assert code == 0
    assert "exported 6000 records" in stdout
    assert sorted(p.name for p in out.iterdir()) == ["capture=a", "capture=a-2", f"capture={REAL_V2.stem}"]
    got = sql(
        f"SELECT capture, cpu, count(*) FROM read_parquet('{out}/**/*.parquet', hive_partitioning = true) "
        "GROUP BY ALL"
    )
    want = {("a", c): n for c, n in per_cpu(a).items()}
    want |= {("a-2", c): n for c, n in per_cpu(b).items()}
    want |= {(REAL_V2.stem, c): n for c, n in per_cpu(REAL_V2).items()}
    assert {(cap, cpu): n for cap, cpu, n in got} == want


def test_a_non_empty_directory_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ds"
    out.mkdir()
    (out / "old.parquet").write_bytes(b"x")
    code, stdout, err = export(capsys, out, REAL_V2)
    assert code == ExitCode.CANT_CREATE
    assert err == f"hvtrace: error: cannot write {out}: the directory is not empty\n"
    assert stdout == ""
    code, _, err = export(capsys, out / "old.parquet", REAL_V2)
    assert code == ExitCode.CANT_CREATE
    assert "a Parquet dataset is a directory" in err


def test_only_parquet_takes_several_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["export", "--format", "csv", "-o", str(tmp_path / "x.csv"), str(REAL_V2), str(REAL_V2)])
    assert code == ExitCode.USAGE
    assert "exports one trace file (2 given)" in capsys.readouterr().err


def test_the_symbolize_hook_adds_a_symbol_column(tmp_path: Path) -> None:
    """The column-adding step `--symbols` plugs into: one name (or None) per record, in record order."""

    def symbolize(recs: Records) -> list[str | None]:
        return [f"f+{rip & 0xFF:#x}" if rip & 1 else None for rip in recs["rip"].tolist()]

    out = tmp_path / "ds"
    assert export_api(TraceFile.open(REAL_V2), "parquet", out, symbolize) == 4000
    got = sql(
        f"SELECT count(symbol), count(*) FILTER (WHERE symbol = printf('f+%#x', rip & 255)) "
        f"FROM '{out}/**/*.parquet'"
    )
    odd = int((TraceFile.open(REAL_V2).records()["rip"] & 1).sum())
    assert got == [(odd, odd)]


def test_an_empty_capture_is_an_empty_readable_dataset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty.hvt"
    TraceWriter(empty, {"vendor": 2, "vendor_name": "SVM", "cpus": 1}).close()
    out = tmp_path / "ds"
    code, stdout, _ = export(capsys, out, empty)
    assert code == 0
    assert "exported 0 records" in stdout
    assert sql(f"SELECT count(*) FROM read_parquet('{out}/**/*.parquet', hive_partitioning = true)") == [(0,)]
    assert "reason_name" in ds.dataset(out, format="parquet").schema.names
