"""`hvtrace query "SELECT ..." FILE...`: DuckDB over trace files, as a table ``exits`` (every record field
and the derived columns of :mod:`hvtrace.trace.exit_batches`, ``file`` telling the traces apart).

DuckDB reads ``exits`` as an Arrow stream of one batch per chunk, made as it is consumed: a file is never
decoded whole. The stream object makes a fresh stream each time DuckDB scans it, so a query may name
``exits`` more than once (self-joins, sub-queries).
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator, Sequence
from typing import IO, Any

import duckdb
import pyarrow as pa

from hvtrace.exitcodes import ExitCode
from hvtrace.trace.errors import TraceError
from hvtrace.trace.exit_batches import ExitBatches, Symbolize, exits_schema
from hvtrace.trace.tracefile import TraceFile


class ExitsStream:
    """Every record of ``files`` as an Arrow C stream (the PyCapsule protocol DuckDB scans)."""

    def __init__(
        self,
        files: Sequence[TraceFile],
        symbolize: Symbolize | None = None,
        columns: frozenset[str] | None = None,
    ) -> None:
        self.sources = [ExitBatches(tf, str(tf.path), symbolize, columns) for tf in files]
        self.schema = self.sources[0].schema if self.sources else exits_schema()

    def _batches(self) -> Iterator[pa.RecordBatch]:
        for src in self.sources:
            yield from src.batches()

    def __arrow_c_stream__(self, requested_schema: object = None) -> object:
        reader = pa.RecordBatchReader.from_batches(self.schema, self._batches())
        return reader.__arrow_c_stream__(requested_schema)


def connect(
    files: Sequence[TraceFile], symbolize: Symbolize | None = None, columns: frozenset[str] | None = None
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the view ``exits`` over ``files`` (``symbolize``: plus ``symbol``;
    ``columns``: only those, None for all)."""
    con = duckdb.connect()
    con.register("hvtrace_exits", ExitsStream(files, symbolize, columns))
    con.execute("CREATE VIEW exits AS SELECT * FROM hvtrace_exits")
    return con


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


def referenced_columns(sql: str) -> frozenset[str] | None:
    """The column names ``sql`` mentions (DuckDB's own parse tree, json_serialize_sql), or None when
    it may need every column: ``*`` / COLUMNS(...), a NATURAL join, a whole-row reference, or SQL
    that does not parse (its error is then DuckDB's). Building only these columns saves most of the
    per-record work; a name this misses makes the binder fail, and :func:`query` retries with all."""
    try:
        row = duckdb.connect().execute("SELECT json_serialize_sql(?)", [sql]).fetchone()
        tree = json.loads(row[0]) if row else {"error": True}
    except (duckdb.Error, TypeError, ValueError):
        return None
    if tree.get("error"):
        return None
    names: set[str] = set()
    tables = {"exits"}
    for node in _walk(tree):
        if node.get("class") == "STAR" or node.get("ref_type") == "NATURAL":
            return None
        if node.get("type") == "BASE_TABLE" and node.get("alias"):
            tables.add(str(node["alias"]).lower())
        if node.get("class") == "COLUMN_REF" and node.get("column_names"):
            names.add(str(node["column_names"][-1]).lower())
        names.update(str(c).lower() for c in node.get("using_columns") or ())
    return None if names & tables else frozenset(names)


Connection = duckdb.DuckDBPyConnection


def query(files: Sequence[TraceFile], sql: str) -> tuple[Connection, Connection]:
    """(connection, result cursor) of ``sql`` over ``files``, building only the columns it names. A
    DuckDB error (syntax, unknown column, bad cast ...) is one usage-error line."""
    columns = referenced_columns(sql)
    for cols in (columns, None) if columns is not None else (None,):
        con = connect(files, columns=cols)
        try:
            return con, con.execute(sql)
        except duckdb.BinderException as e:
            con.close()
            if cols is None:
                raise _usage(e) from None
            # a column the parse tree did not show: every column, once more
        except duckdb.Error as e:
            con.close()
            raise _usage(e) from None
    raise AssertionError("unreachable: the last try has every column")


def _usage(e: duckdb.Error) -> TraceError:
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return TraceError(ExitCode.USAGE, f"query failed: {first}")


def _cell(v: Any) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, float):
        return f"{v:.9g}"
    return str(v)


#: Rows the table format prints (it needs them all in memory for the widths); csv/json print every row.
TABLE_ROWS = 10_000


def write_table(names: list[str], rows: list[tuple[Any, ...]], out: IO[str], more: int = 0) -> None:
    """Aligned columns: numbers to the right, text to the left; a line under the header; ``more`` rows
    not shown are counted in the last line."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(n), *(len(r[i]) for r in cells)]) for i, n in enumerate(names)]
    numeric = [all(isinstance(r[i], int | float) or r[i] is None for r in rows) for i in range(len(names))]

    def line(vals: Sequence[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(vals, widths, numeric, strict=True)]
        return "  ".join(parts).rstrip()

    out.write(line(names) + "\n")
    out.write("  ".join("-" * w for w in widths) + "\n")
    for r in cells:
        out.write(line(r) + "\n")
    total = len(rows) + more
    shown = f"; the first {len(rows)} shown (--format csv or json for all)" if more else ""
    out.write(f"({total} row{'' if total == 1 else 's'}{shown})\n")


def write_result(
    cur: duckdb.DuckDBPyConnection, fmt: str, out: IO[str] | None = None, max_rows: int = TABLE_ROWS
) -> int:
    """Print a query's result as ``fmt`` (table, csv or json) to ``out`` (stdout); returns the row
    count. CSV and JSON are streamed in blocks; the table needs every row for its widths."""
    out = sys.stdout if out is None else out
    names = [d[0] for d in cur.description or ()]
    if fmt == "table":
        rows = cur.fetchmany(max_rows)
        more = 0
        while block := cur.fetchmany(65536):
            more += len(block)
        write_table(names, rows, out, more)
        return len(rows) + more
    n = 0
    w = csv.writer(out) if fmt == "csv" else None
    if w is not None:
        w.writerow(names)
    else:
        out.write("[")
    while block := cur.fetchmany(65536):
        if w is not None:
            w.writerows(block)
        else:
            for row in block:
                out.write(
                    ("," if n else "") + "\n" + json.dumps(dict(zip(names, row, strict=True)), default=str)
                )
                n += 1
            continue
        n += len(block)
    if w is None:
        out.write("\n]\n")
    return n
