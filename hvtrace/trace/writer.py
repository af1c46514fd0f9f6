"""Writing a trace file: header, chunks of one CPU's records (a summary of them for `hvtrace report`,
then zstd of their columns, CRC-32) flushed as they fill or on demand, so a capture killed with
SIGKILL leaves every complete chunk readable; at close the index, the summary (with the code map)
and the fixed trailer."""

from __future__ import annotations

import json
import os
import struct
import time
import zlib
from pathlib import Path
from typing import IO, Any

import numpy as np

from hvtrace.abi import HV_ABI_VERSION
from hvtrace.trace import chunk_codec, chunk_columns, chunk_summary
from hvtrace.trace import fileformat as layout
from hvtrace.trace.records import Records


class TraceWriter:
    """Append records (any CPUs, any order) to a new trace file; ``close()`` writes the index."""

    def __init__(
        self,
        path: Path,
        meta: dict[str, Any],
        *,
        chunk_records: int = layout.DEFAULT_CHUNK_RECORDS,
        codec: int = chunk_codec.DEFAULT_FLAG,
        level: int | None = None,
        columns: bool = True,
        summaries: bool = True,
    ) -> None:
        self.path = Path(path)
        if not 0 < chunk_records <= layout.MAX_CHUNK_RECORDS:
            raise ValueError(f"chunk_records must be 1..{layout.MAX_CHUNK_RECORDS}")
        self.chunk_records = chunk_records
        self.codec = codec  # a chunk flag: FLAG_ZSTD (default), FLAG_ZLIB (as older files) or 0 (stored)
        self.level = level  # the codec's level; None = its default (chunk_codec)
        # columnar chunks (the report reads only its columns) with summaries (the report merges them
        # instead of decoding a chunk it selects whole): format version 3; without summaries 2; classic
        # chunks (never summarised: what format 1 readers take): 1
        self.layout = layout.FLAG_COLUMNS if columns else layout.FLAG_SHUFFLE
        self.summaries = summaries and columns
        version = (
            (layout.FORMAT_VERSION if self.summaries else layout.FORMAT_VERSION_COLUMNS)
            if columns
            else layout.FORMAT_VERSION_CLASSIC
        )
        # what this writer writes, whatever a copied file's metadata said
        self.meta = {**meta, "format_version": version, "abi_version": HV_ABI_VERSION}
        self.meta.setdefault("start_time", time.time())
        # A new file, never the old one truncated: readers map trace files (TraceFile.open), and a
        # mapping of a file truncated under it faults (SIGBUS); an unlinked one lives on for them.
        if self.path.is_file():
            self.path.unlink()
        self._fh: IO[bytes] = self.path.open("xb")
        blob = json.dumps(self.meta, sort_keys=True).encode()
        self._fh.write(
            layout.FILE_HEADER.pack(layout.FILE_MAGIC, version, HV_ABI_VERSION, len(blob), zlib.crc32(blob))
        )
        self._fh.write(blob)
        self._fh.flush()
        self._pending: dict[int, list[Records]] = {}
        self._pending_n: dict[int, int] = {}
        self._lost_pending: dict[int, int] = {}
        self.index: list[tuple[int, ...]] = []
        self.records = 0
        self.lost: dict[int, int] = {}
        self.code: dict[int, bytes] = {}  # RIP -> instruction bytes, written into the summary at close
        self._closed = False

    def add(self, recs: Records) -> None:
        """Queue records; full chunks are written at once."""
        if not len(recs):
            return
        cpus = recs["cpu"]
        for cpu in np.unique(cpus).tolist():
            part = recs[cpus == cpu] if len(recs) != int((cpus == cpu).sum()) else recs
            self._pending.setdefault(cpu, []).append(part)
            self._pending_n[cpu] = self._pending_n.get(cpu, 0) + len(part)
            while self._pending_n[cpu] >= self.chunk_records:
                self._flush_cpu(cpu, self.chunk_records)

    def note_lost(self, cpu: int, n: int) -> None:
        """Records lost on ``cpu`` before the next queued record (stored in the next chunk header)."""
        if n > 0:
            self._lost_pending[cpu] = self._lost_pending.get(cpu, 0) + n
            self.lost[cpu] = self.lost.get(cpu, 0) + n

    def _flush_cpu(self, cpu: int, limit: int | None = None) -> None:
        parts = self._pending.get(cpu, [])
        if not parts:
            return
        allr = parts[0] if len(parts) == 1 else np.concatenate(parts)
        n = len(allr) if limit is None else min(limit, len(allr))
        chunk, rest = allr[:n], allr[n:]
        self._pending[cpu] = [rest] if len(rest) else []
        self._pending_n[cpu] = len(rest)
        self._write_chunk(cpu, chunk)

    def _write_chunk(self, cpu: int, recs: Records) -> None:
        if self.layout == layout.FLAG_COLUMNS:
            payload = chunk_columns.encode(recs, self.codec, self.level)
        else:
            payload = chunk_codec.encode(layout.shuffle(recs), self.codec, self.level)
        flags = self.codec | self.layout
        summary = chunk_summary.summarize(recs) if self.summaries else None
        if summary is not None:  # None: records it cannot state exactly; the report decodes them
            payload = chunk_summary.encode(summary, self.codec, self.level) + payload
            flags |= layout.FLAG_SUMMARY
        lost = self._lost_pending.pop(cpu, 0)
        first_seq, last_seq = int(recs["seq"][0]), int(recs["seq"][-1])
        tsc = recs["tsc"]
        first_tsc, last_tsc = int(tsc.min()), int(tsc.max())
        body = layout.CHUNK_HEADER.pack(
            layout.CHUNK_MAGIC, cpu, flags, len(recs), first_seq, last_seq,
            first_tsc, last_tsc, lost, len(payload), zlib.crc32(payload), 0,
        )[:-4]  # fmt: skip
        offset = self._fh.tell()
        self._fh.write(body + struct.pack("<I", zlib.crc32(body)) + payload)
        self.index.append((offset, cpu, len(recs), first_seq, last_seq, first_tsc, last_tsc, lost))
        self.records += len(recs)

    def flush(self) -> None:
        """Write every queued record as (possibly short) chunks and push them to the OS."""
        for cpu in sorted(self._pending):
            self._flush_cpu(cpu)
        for cpu in list(self._lost_pending):  # losses with no record after them yet: an empty marker
            if self._lost_pending[cpu]:
                self._write_chunk_empty(cpu)
        self._fh.flush()

    def _write_chunk_empty(self, cpu: int) -> None:
        lost = self._lost_pending.pop(cpu, 0)
        body = layout.CHUNK_HEADER.pack(
            layout.CHUNK_MAGIC, cpu, 0, 0, 0, 0, 0, 0, lost, 0, zlib.crc32(b""), 0
        )[:-4]
        offset = self._fh.tell()
        self._fh.write(body + struct.pack("<I", zlib.crc32(body)))
        self.index.append((offset, cpu, 0, 0, 0, 0, 0, lost))

    def close(self, summary: dict[str, Any] | None = None) -> None:
        if self._closed:
            return
        self._closed = True
        self.flush()
        idx = (
            np.array(self.index, dtype=layout.INDEX_DTYPE) if self.index else np.empty(0, layout.INDEX_DTYPE)
        )
        info = {
            "records": self.records,
            "lost": {str(k): v for k, v in self.lost.items()},
            "end_time": time.time(),
        }
        info.update(summary or {})
        if self.code:
            info["code"] = layout.encode_code(self.code)
        blob = json.dumps(info, sort_keys=True).encode()
        body = layout.INDEX_MAGIC + struct.pack("<II", len(idx), len(blob)) + idx.tobytes() + blob
        offset = self._fh.tell()
        self._fh.write(body)
        self._fh.write(layout.TRAILER.pack(offset, len(body), zlib.crc32(body), layout.TRAILER_MAGIC))
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
