"""`hvtrace query`: DuckDB over real trace files (written by TraceWriter, or a real QEMU capture in
tests/data) through the CLI entry point: every field and derived column, several files, a table named
twice in one query, the output formats, and the one-line errors (bad SQL 64, not a trace 65, damaged 79).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

from hvtrace.cli import main
from hvtrace.exitcodes import ExitCode
from hvtrace.trace.query import referenced_columns
from hvtrace.trace.tracefile import TraceFile, TraceWriter
from tests.unit.test_damaged_files import damage
from tests.unit.test_tracefile import make_records

DATA = Path(__file__).parent.parent / "data"
REAL_V2 = DATA / "trace-v2-svm-2cpu-storm.hvt"  # `hvtrace capture --backend qemu --cpus 2 storm=1`
HZ = 2_000_000_000


def write_v2(path: Path, *, hz: int | None = HZ) -> Path:
    """2 CPUs x 500 records; handling time 100 + i ticks, unknown (tsc_resume 0) for every 10th."""
    recs = []
    for cpu, start in ((0, 1000), (1, 1004)):
        r = make_records(cpu, 500, start, 40)
        r["tsc_resume"] = r["tsc"] + 100 + np.arange(500)
        r["tsc_resume"][::10] = 0
        r["reason"] = 10 + (np.arange(500) % 3 == 0) * 20  # VMX CPUID (10) and 30 (IO_INSTRUCTION)
        r["rip"] = 0x1000 + (np.arange(500) % 4) * 0x10
        recs.append(r)
    meta = {"vendor": 1, "vendor_name": "VMX", "cpus": 2, **({"tsc_hz": hz} if hz else {})}
    with TraceWriter(path, meta, chunk_records=128) as w:
        w.add(np.concatenate(recs))
    return path


def query(
    capsys: pytest.CaptureFixture[str], sql: str, *files: Path, fmt: str = "json"
) -> tuple[int, str, str]:
    code = main(["query", sql, *map(str, files), "--format", fmt])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def rows(capsys: pytest.CaptureFixture[str], sql: str, *files: Path) -> list[dict[str, object]]:
    code, out, err = query(capsys, sql, *files)
    assert code == 0, err
    result: list[dict[str, object]] = json.loads(out)
    return result


def test_every_field_and_the_derived_columns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = write_v2(tmp_path / "a.hvt")
    recs = TraceFile.open(f).records()
    (row,) = rows(capsys, "SELECT * FROM exits WHERE cpu = 1 AND seq = 2", f)
    rec = recs[(recs["cpu"] == 1) & (recs["seq"] == 2)][0]
    for name in (n for n in recs.dtype.names or () if n != "reserved"):
        assert row[name] == int(rec[name]), name
    assert row["reason_name"] == "CPUID"
    assert row["kind_name"] == "CPUID"
    assert row["handling_ticks"] == 101
    assert row["handling_s"] == pytest.approx(101 / HZ)
    assert row["t_s"] == pytest.approx((1004 + 40 - 1000) / HZ)  # since the capture's first TSC
    assert row["file"] == str(f)
    unknown = rows(capsys, "SELECT count(*) n, count(handling_ticks) h FROM exits WHERE seq % 10 = 1", f)
    assert unknown == [{"n": 100, "h": 0}]  # tsc_resume 0: NULL, not a huge negative number


def test_seconds_are_null_without_a_tsc_rate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = write_v2(tmp_path / "norate.hvt", hz=None)
    got = rows(capsys, "SELECT count(handling_ticks) t, count(handling_s) s, count(t_s) ts FROM exits", f)
    assert got == [{"t": 900, "s": 0, "ts": 0}]


def test_counts_per_reason_and_cpu_match_the_records(capsys: pytest.CaptureFixture[str]) -> None:
    recs = TraceFile.open(REAL_V2).records()
    got = rows(capsys, "SELECT cpu, reason, count(*) n FROM exits GROUP BY ALL", REAL_V2)
    want: dict[tuple[int, int], int] = {}
    for c, r in zip(recs["cpu"].tolist(), recs["reason"].tolist(), strict=True):
        want[(c, r)] = want.get((c, r), 0) + 1
    assert {(g["cpu"], g["reason"]): g["n"] for g in got} == want


def test_several_files_and_a_table_named_twice(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = write_v2(tmp_path / "a.hvt"), write_v2(tmp_path / "b.hvt")
    got = rows(capsys, "SELECT file, count(*) n FROM exits GROUP BY file ORDER BY file", a, b)
    assert got == [{"file": str(a), "n": 1000}, {"file": str(b), "n": 1000}]
    # a self-join scans `exits` twice: each scan gets a fresh stream (a consumed one would give 0)
    sql = "SELECT count(*) n FROM exits x JOIN exits y USING (file, cpu, seq)"
    assert rows(capsys, sql, a) == [{"n": 1000}]
    assert rows(capsys, "SELECT (SELECT count(*) FROM exits) - count(*) d FROM exits", a) == [{"d": 0}]


def test_table_and_csv_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = write_v2(tmp_path / "a.hvt")
    sql = "SELECT cpu, count(*) AS n, max(reason_name) AS r FROM exits GROUP BY cpu ORDER BY cpu"
    code, out, _ = query(capsys, sql, f, fmt="table")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["cpu", "n", "r"]
    assert lines[2].split() == ["0", "500", "IO_INSTRUCTION"]
    assert lines[-1] == "(2 rows)"
    code, out, _ = query(capsys, sql, f, fmt="csv")
    assert list(csv.reader(io.StringIO(out))) == [
        ["cpu", "n", "r"],
        ["0", "500", "IO_INSTRUCTION"],
        ["1", "500", "IO_INSTRUCTION"],
    ]


@pytest.mark.parametrize(
    ("sql", "says"),
    [
        ("SELEC 1", "Parser Error"),
        ("SELECT no_such_column FROM exits", "no_such_column"),
        ("SELECT * FROM no_such_table", "no_such_table"),
    ],
)
def test_bad_sql_is_one_line_and_exit_64(
    sql: str, says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = query(capsys, sql, write_v2(tmp_path / "a.hvt"))
    assert code == ExitCode.USAGE
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("hvtrace: error: query failed: ")
    assert says in err


def test_bad_and_damaged_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "junk.hvt"
    junk.write_bytes(b"not a trace at all")
    code, _, err = query(capsys, "SELECT count(*) FROM exits", junk)
    assert code == ExitCode.BAD_DATA
    assert err.count("\n") == 1
    good = write_v2(tmp_path / "good.hvt")
    bad = damage(good, tmp_path / "bad.hvt", payload_of=(2,))
    lost = int(TraceFile.open(good).index["count"][2])
    code, out, err = query(capsys, "SELECT count(*) n FROM exits", bad)
    assert code == ExitCode.DAMAGED
    assert json.loads(out) == [{"n": 1000 - lost}]
    (warning,) = [ln for ln in err.splitlines() if "warning" in ln]
    assert f"1 chunk skipped, {lost} records lost" in warning


def test_the_table_shows_its_first_rows_and_counts_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = write_v2(tmp_path / "a.hvt")
    assert main(["query", "SELECT seq FROM exits", str(f), "--max-rows", "10"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 + 10 + 1
    assert lines[-1] == "(1000 rows; the first 10 shown (--format csv or json for all))"


@pytest.mark.parametrize(
    ("sql", "columns"),
    [
        ("SELECT e.rip, count(*) FROM exits e WHERE cpu = 1 GROUP BY ALL", {"rip", "cpu"}),
        ("SELECT count(*) FROM exits a JOIN exits b USING (seq)", {"seq"}),
        ("SELECT * FROM exits", None),
        ("SELECT COLUMNS('.*_s') FROM exits", None),
        ("SELECT count(*) FROM exits NATURAL JOIN exits", None),
        ("SELECT e FROM exits e", None),
        ("SELEC 1", None),
    ],
)
def test_only_the_named_columns_are_built(sql: str, columns: set[str] | None) -> None:
    assert referenced_columns(sql) == (None if columns is None else frozenset(columns))


def test_pruned_and_full_columns_give_the_same_answers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """count(*) with no column named still counts every row (a batch keeps one column), a lambda's
    parameter is no column, and * keeps every column. (An unknown column fails with the pruned columns,
    then with all: test_bad_sql_is_one_line_and_exit_64.)"""
    f = write_v2(tmp_path / "a.hvt")
    assert rows(capsys, "SELECT count(*) n FROM exits", f) == [{"n": 1000}]
    lam = "SELECT sum(list_sum(list_transform([1, 2], lambda x: x + cpu))) s, count(handling_s) h FROM exits"
    assert rows(capsys, lam, f) == [{"s": 500 * 3 + 500 * 5, "h": 900}]
    (row,) = rows(capsys, "SELECT * FROM exits LIMIT 1", f)
    assert len(row) == 20
