"""`hvtrace export --format parquet`: a Hive-partitioned Parquet dataset that DuckDB, Polars, Spark and
Trino read as it is: ``OUT/cpu=N/part-0.parquet`` for one trace, ``OUT/capture=NAME/cpu=N/...`` for
several (NAME: the file's stem, numbered when two files share one).

The columns are those of `hvtrace query`'s ``exits`` (every record field and the derived ones); the
partition columns live in the directory names, as Hive partitioning has it. Only standard Parquet
types: unsigned integers (INT with the unsigned logical type), INT64, DOUBLE and UTF-8 strings
(dictionary-encoded); no extension types. Written batch by batch (one per chunk): memory stays bounded.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from hvtrace.exitcodes import ExitCode
from hvtrace.trace.errors import TraceError
from hvtrace.trace.exit_batches import ExitBatches, Symbolize
from hvtrace.trace.tracefile import TraceFile


def check_output_dir(path: Path) -> None:
    """The dataset directory must be new or empty (never mixed with another dataset's files)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise TraceError(ExitCode.CANT_CREATE, f"cannot write {path}: a Parquet dataset is a directory")
    if path.is_dir() and any(path.iterdir()):
        raise TraceError(ExitCode.CANT_CREATE, f"cannot write {path}: the directory is not empty")
    if not path.parent.is_dir():
        raise TraceError(ExitCode.CANT_CREATE, f"cannot write {path}: directory {path.parent} does not exist")


def capture_names(files: Sequence[TraceFile]) -> list[str]:
    """A partition name per file: its stem, with ``-2``, ``-3`` ... when stems repeat."""
    seen: dict[str, int] = {}
    names = []
    for tf in files:
        stem = tf.path.stem or "trace"
        seen[stem] = seen.get(stem, 0) + 1
        names.append(stem if seen[stem] == 1 else f"{stem}-{seen[stem]}")
    return names


def export_parquet(files: Sequence[TraceFile], out: Path, symbolize: Symbolize | None = None) -> int:
    """Write the dataset; returns the record count."""
    sources = [ExitBatches(tf, str(tf.path), symbolize) for tf in files]
    schema = sources[0].schema
    parts = [pa.field("cpu", pa.uint16())]
    if len(files) > 1:
        schema = schema.append(pa.field("capture", pa.string()))
        parts.insert(0, pa.field("capture", pa.string()))
    count = 0

    def batches() -> Iterator[pa.RecordBatch]:
        nonlocal count
        for src, name in zip(sources, capture_names(files), strict=True):
            for batch in src.batches():
                count += batch.num_rows
                if len(files) > 1:
                    yield batch.append_column("capture", pa.array([name] * batch.num_rows, pa.string()))
                else:
                    yield batch

    fmt = ds.ParquetFileFormat()
    ds.write_dataset(
        batches(),
        out,
        schema=schema,
        format=fmt,
        file_options=fmt.make_write_options(compression="zstd"),
        partitioning=ds.partitioning(pa.schema(parts), flavor="hive"),
        basename_template="part-{i}.parquet",
        existing_data_behavior="overwrite_or_ignore",  # checked empty before (check_output_dir)
        min_rows_per_group=1 << 16,
        max_rows_per_group=1 << 20,
    )
    if not count:  # no partition was written: one empty file keeps the columns readable
        Path(out).mkdir(exist_ok=True)
        pq.write_table(schema.empty_table(), Path(out) / "part-0.parquet")
    return count
