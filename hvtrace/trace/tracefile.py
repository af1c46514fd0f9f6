"""The hvtrace trace file (.hvt): see docs/trace-format.md for the layout.

Writer: header, then chunks of one CPU's records (a summary of them, hvtrace.trace.chunk_summary, and
zstd of their columns, hvtrace.trace.chunk_columns; format 1 files: of the byte-shuffled records;
CRC-32), flushed as they fill or on demand, so a capture killed with SIGKILL leaves every complete
chunk readable; at close an index (chunk offsets, CPUs, TSC and seq ranges) and a summary (with the
code map: the instruction bytes at every distinct RIP, when the capture could read guest memory),
then a fixed trailer.
Reader: uses the index when the trailer is valid, else recovers it by scanning the chunks; a chunk
with a bad checksum is reported (``errors``) and skipped, the rest stays readable.
"""

from __future__ import annotations

import mmap
import os
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from hvtrace.abi import HV_ABI_VERSION
from hvtrace.exitcodes import ExitCode
from hvtrace.trace import chunk_codec, chunk_columns, chunk_summary
from hvtrace.trace.errors import TraceError
from hvtrace.trace.fileformat import (
    CHUNK_HEADER,
    CHUNK_MAGIC,
    FILE_HEADER,
    FILE_MAGIC,
    FLAG_COLUMNS,
    FLAG_SUMMARY,
    FORMAT_VERSION,
    INDEX_DTYPE,
    INDEX_MAGIC,
    KNOWN_FLAGS,
    MAX_CHUNK_RECORDS,
    TRAILER,
    TRAILER_MAGIC,
    ChunkError,
    Damage,
    check_meta,
    decode_code,
    json_object,
)
from hvtrace.trace.records import RECORD_DTYPE, RECORD_DTYPE_V1, Records, empty, time_order, widen_v1
from hvtrace.trace.writer import TraceWriter

__all__ = [
    "CHUNK_HEADER",
    "CHUNK_MAGIC",
    "FILE_HEADER",
    "INDEX_DTYPE",
    "INDEX_MAGIC",
    "MAX_CHUNK_RECORDS",
    "TRAILER",
    "TRAILER_MAGIC",
    "ChunkError",
    "Damage",
    "TraceFile",
    "TraceWriter",
]


_T = TypeVar("_T")

#: Bytes of chunks checked between two :meth:`TraceFile.release` calls while verifying a mapped file.
_RELEASE_EVERY = 32 << 20


#: Record layout by the ABI version in a file's header: this one's, and v1's (64-byte records).
RECORD_DTYPES: dict[int, np.dtype[np.void]] = {HV_ABI_VERSION: RECORD_DTYPE, 1: RECORD_DTYPE_V1}


@dataclass
class TraceFile:
    """A trace file opened for reading. ``index`` is a numpy array (INDEX_DTYPE), one row per chunk.

    Every chunk's checksums are verified when the file is opened, so :attr:`damage` is complete before
    any record is read (a payload that passes its CRC but does not decompress is added when read).
    """

    path: Path
    meta: dict[str, Any]
    index: npt.NDArray[np.void]
    summary: dict[str, Any] | None  # None when the file was not closed (capture killed)
    errors: list[ChunkError] = field(default_factory=list)
    truncated_at: int | None = None  # offset where an incomplete chunk starts (capture killed)
    index_error: str | None = None  # the index was present but damaged (rebuilt by scanning)
    _data: bytes | mmap.mmap = b""
    _abi: int = HV_ABI_VERSION  # the records' ABI version (file header): v1 records are widened on read
    _code: dict[int, bytes] | None = None
    _bad: dict[int, ChunkError] = field(default_factory=dict)  # index row -> why it is skipped
    _chunks_end: int = 0
    _summarised: set[int] = field(default_factory=set)  # index rows whose header has FLAG_SUMMARY

    @classmethod
    def open(cls, path: Path) -> TraceFile:
        """Map the file (read-only): chunks are read from it as needed and the pages already checked or
        read are handed back (:meth:`release`), so memory stays bounded whatever the file's size."""
        path = Path(path)
        try:
            with path.open("rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                data: bytes | mmap.mmap = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        except FileNotFoundError:
            raise TraceError(ExitCode.NO_INPUT, f"trace file {path} does not exist") from None
        except IsADirectoryError:
            raise TraceError(ExitCode.BAD_DATA, f"{path} is a directory, not a trace file") from None
        except OSError as e:
            raise TraceError(ExitCode.NO_INPUT, f"cannot read trace file {path}: {e.strerror}") from None
        return cls.from_bytes(data, path)

    @classmethod
    def from_bytes(cls, data: bytes | mmap.mmap, path: Path | str = "<bytes>") -> TraceFile:
        """Parse a whole trace file held in memory (or mapped); any malformation is a TraceError."""
        path = Path(path)
        if len(data) < FILE_HEADER.size or data[:8] != FILE_MAGIC:
            what = "empty" if not data else "not an hvtrace trace file (bad magic)"
            raise TraceError(ExitCode.BAD_DATA, f"{path}: {what}")
        _, version, abi, mlen, mcrc = FILE_HEADER.unpack_from(data)
        if version > FORMAT_VERSION:
            raise TraceError(
                ExitCode.ABI_MISMATCH,
                f"{path}: trace format version {version} is newer than this hvtrace reads ({FORMAT_VERSION})",
            )
        if abi not in RECORD_DTYPES:
            raise TraceError(
                ExitCode.ABI_MISMATCH,
                f"{path}: recorded under ABI version {abi}, this hvtrace reads {sorted(RECORD_DTYPES)}",
            )
        end = FILE_HEADER.size + mlen
        if end > len(data):
            raise TraceError(ExitCode.BAD_DATA, f"{path}: truncated inside the file header")
        blob = data[FILE_HEADER.size : end]
        if zlib.crc32(blob) != mcrc:
            raise TraceError(ExitCode.BAD_DATA, f"{path}: file header checksum mismatch")
        meta = json_object(blob, "file header metadata", path)
        check_meta(meta, path)
        tf = cls(path, meta, np.empty(0, INDEX_DTYPE), None, _data=data, _abi=abi)
        if not tf._load_index(end):
            tf._scan(end)
        elif tf.summary is not None:
            for key in ("tsc_hz", "tsc_hz_source"):  # learnt during the capture, after the header
                if tf.summary.get(key) and not meta.get(key):
                    meta[key] = tf.summary[key]
            check_meta(meta, path)
        tf._verify()
        tf.release()
        return tf

    def release(self) -> None:
        """Hand the mapped file's pages back to the page cache (they are read again if needed): keeps the
        resident size bounded after a pass over a big file. Nothing to do for a file held as bytes."""
        if isinstance(self._data, mmap.mmap) and hasattr(mmap, "MADV_DONTNEED"):
            self._data.madvise(mmap.MADV_DONTNEED)

    def _load_index(self, start: int) -> bool:
        """Use the trailer's index when it is intact; a present but damaged one sets ``index_error``."""
        data = self._data
        if len(data) < start + TRAILER.size:
            return False
        off, length, crc, magic = TRAILER.unpack_from(data, len(data) - TRAILER.size)
        if magic != TRAILER_MAGIC:
            return False  # no trailer: the capture was killed (not damage)
        body = data[off : off + length]
        why = None
        if off + length != len(data) - TRAILER.size or off < start:
            why = "trailer points outside the file"
        elif zlib.crc32(body) != crc or body[:4] != INDEX_MAGIC or len(body) < 12:
            why = "checksum mismatch"
        else:
            n, blen = struct.unpack_from("<II", body, 4)
            if 12 + n * INDEX_DTYPE.itemsize + blen != len(body):
                why = "its lengths do not add up"
        if why is None:
            index = np.frombuffer(body, INDEX_DTYPE, count=n, offset=12).copy()
            sblob = body[12 + n * INDEX_DTYPE.itemsize :]
            offsets = index["offset"]
            if n and (int(offsets.min()) < start or int(offsets.max()) + CHUNK_HEADER.size > off):
                why = "a chunk offset points outside the chunks"
            else:
                try:
                    self.summary = json_object(sblob, "summary", self.path)
                except TraceError:
                    why = "the summary is not a JSON object"
        if why is not None:
            self.index_error = f"index at offset {off} unusable ({why}), rebuilt by scanning the chunks"
            self.summary = None
            return False
        self.index = index
        self._chunks_end = off
        return True

    def _scan(self, pos: int) -> None:
        """Rebuild the index by walking the chunks; resynchronise on the chunk magic after damage.

        Each step advances ``pos`` (by a chunk, or to the next magic found by ``bytes.find``), so the walk
        is linear in the file size whatever the bytes are.
        """
        data = self._data
        rows: list[tuple[int, ...]] = []
        while pos < len(data):
            if data[pos : pos + 4] == INDEX_MAGIC:
                break
            if pos + CHUNK_HEADER.size > len(data):
                self.truncated_at = pos
                break
            hdr = CHUNK_HEADER.unpack_from(data, pos)
            ok_hdr = hdr[0] == CHUNK_MAGIC and zlib.crc32(data[pos : pos + CHUNK_HEADER.size - 4]) == hdr[11]
            if not ok_hdr:
                nxt = data.find(CHUNK_MAGIC, pos + 1)
                self.errors.append(ChunkError(None, pos, "skipped to the next chunk"))
                if nxt < 0:
                    break
                pos = nxt
                continue
            _, cpu, _flags, count, fs, ls, ft, lt, lost, plen, _pcrc, _ = hdr
            if pos + CHUNK_HEADER.size + plen > len(data):
                self.truncated_at = pos
                break
            rows.append((pos, cpu, count, fs, ls, ft, lt, lost))
            pos += CHUNK_HEADER.size + plen
        self.index = np.array(rows, dtype=INDEX_DTYPE) if rows else np.empty(0, INDEX_DTYPE)
        self._chunks_end = pos

    def _check_chunk(self, row: tuple[int, ...]) -> str | None:
        """Why an index row cannot be read (header, agreement with the index, size, CRC), or None."""
        off, row_cpu, row_count, *_seqs_tscs, row_lost = row
        data = self._data
        if off + CHUNK_HEADER.size > len(data):
            return "header beyond the end of the file"
        hdr = CHUNK_HEADER.unpack_from(data, off)
        magic, cpu, flags, count, *_r, lost, plen, pcrc, hcrc = hdr
        if magic != CHUNK_MAGIC or zlib.crc32(data[off : off + CHUNK_HEADER.size - 4]) != hcrc:
            return "damaged chunk header"
        if (cpu, count, lost) != (row_cpu, row_count, row_lost):
            return "chunk header disagrees with the index"
        if count > MAX_CHUNK_RECORDS:
            return f"implausible record count {count}"
        if flags & ~KNOWN_FLAGS:
            return f"unknown flags {flags:#x}"
        if flags & FLAG_SUMMARY:  # noted now: reading it again later would map the header's pages
            self._summarised.add(off)
        if off + CHUNK_HEADER.size + plen > len(data):
            return "payload beyond the end of the file"
        with memoryview(data) as view:  # no copy of the payload
            crc = zlib.crc32(view[off + CHUNK_HEADER.size : off + CHUNK_HEADER.size + plen])
        if crc != pcrc:
            return "checksum mismatch"
        return None

    def _verify(self) -> None:
        checked = 0
        for i, row in enumerate(self.index.tolist()):  # plain tuples: fast for many chunks
            why = self._check_chunk(row)
            if why is not None:
                self._skip(i, why)
            if row[0] - checked > _RELEASE_EVERY:
                self.release()
                checked = row[0]

    def _skip(self, i: int, why: str) -> ChunkError:
        if i not in self._bad:
            row = self.index[i]
            err = ChunkError(i, int(row["offset"]), why, int(row["count"]), int(row["cpu"]))
            self._bad[i] = err
            self.errors.append(err)
        return self._bad[i]

    @property
    def abi(self) -> int:
        """The records' ABI version (file header); v1 records have no handling time or CR3."""
        return self._abi

    def damaged_chunks(self) -> set[int]:
        """Index rows of the chunks skipped as damaged (so far: reading may find more)."""
        return set(self._bad)

    @property
    def recovered(self) -> bool:
        """True when the file had no valid index (capture killed): the index was rebuilt by scanning."""
        return self.summary is None

    def read_chunk(self, i: int) -> Records:
        """Records of chunk ``i`` (index order); a damaged chunk raises TraceError(BAD_DATA)."""
        dtype = RECORD_DTYPES[self._abi]
        names = dtype.names or ()
        count, flags, payload = self._payload(i)
        if not count:
            return empty()
        if flags & FLAG_COLUMNS:
            cols = self._decoded(i, lambda: chunk_columns.decode(payload, flags, count, dtype, names))
            recs = np.empty(count, dtype)
            for n in names:
                recs[n] = cols[n]
        else:
            planes = self._decoded(i, lambda: chunk_codec.decode_planes(payload, flags, count, dtype, names))
            order = [n for n, _off, _size in chunk_codec.field_layout(dtype)]
            recs = np.concatenate([planes[n] for n in order]).T.copy().reshape(-1).view(dtype)
        return recs if dtype is RECORD_DTYPE else widen_v1(recs)

    def chunk_columns(self, i: int, names: Sequence[str]) -> tuple[int, dict[str, npt.NDArray[Any]]]:
        """Chunk ``i``'s record count and the named fields as unsigned integer arrays (columnar chunks may
        give a narrower type than the record's, with the same values), decoding no more than needed
        (columnar chunks: only the frames holding them; classic ones: only the fields' byte planes are
        gathered); a damaged chunk raises TraceError. Fields the file's ABI lacks (v1: tsc_resume,
        cr3) are not in the result."""
        dtype = RECORD_DTYPES[self._abi]
        have = [n for n in names if n in (dtype.names or ())]
        count, flags, payload = self._payload(i)
        if not count:
            return 0, {}
        if flags & FLAG_COLUMNS:
            return count, self._decoded(i, lambda: chunk_columns.decode(payload, flags, count, dtype, have))
        planes = self._decoded(i, lambda: chunk_codec.decode_planes(payload, flags, count, dtype, have))
        types = {n: dtype.fields[n][0] for n in have}  # type: ignore[index]
        return count, {n: chunk_codec.values_of(planes[n], types[n]) for n in have}

    def _whole_payload(self, i: int) -> tuple[int, int, memoryview]:
        """Chunk ``i``'s record count, flags and payload with its summary (a view of the file; a
        TraceError when the chunk is known damaged)."""
        if i in self._bad:
            raise TraceError(ExitCode.BAD_DATA, f"{self.path}: {self._bad[i]}")
        off = int(self.index["offset"][i])
        _, _cpu, flags, count, *_rest, plen, _pcrc, _hcrc = CHUNK_HEADER.unpack_from(self._data, off)
        # count <= MAX_CHUNK_RECORDS (checked when opened): decoded sizes are bounded
        return count, flags, memoryview(self._data)[off + CHUNK_HEADER.size : off + CHUNK_HEADER.size + plen]

    def _payload(self, i: int) -> tuple[int, int, memoryview]:
        """Chunk ``i``'s record count, flags and the payload of its records (after its summary)."""
        count, flags, payload = self._whole_payload(i)
        if flags & FLAG_SUMMARY:
            payload = self._decoded(i, lambda: chunk_summary.split(payload, count))[2]
        return count, flags, payload

    def has_summary(self, i: int) -> bool:
        """Chunk ``i`` carries a summary of its records (format 3: FLAG_SUMMARY in its header, noted
        when the file was opened)."""
        return int(self.index["offset"][i]) in self._summarised

    def chunk_summary(self, i: int) -> chunk_summary.Summary | None:
        """Chunk ``i``'s summary (hvtrace.trace.chunk_summary); None when it has none or one of another
        version (read its records instead). A damaged summary is a damaged chunk (TraceError, recorded
        in ``errors`` like a payload that does not decode)."""
        count, flags, payload = self._whole_payload(i)
        if not flags & FLAG_SUMMARY or not count:
            return None

        def decode() -> chunk_summary.Summary | None:
            frame, rlen, _rest = chunk_summary.split(payload, count)
            return chunk_summary.decode(frame, flags, rlen, count)

        return self._decoded(i, decode)

    def _decoded(self, i: int, decode: Callable[[], _T]) -> _T:
        """``decode()``'s result; a payload that does not decode marks chunk ``i`` damaged (TraceError)."""
        try:
            return decode()
        except chunk_codec.CodecError as e:
            raise TraceError(ExitCode.BAD_DATA, f"{self.path}: {self._skip(i, str(e))}") from None

    def record_dtype(self) -> np.dtype[np.void]:
        """The layout of the file's records as stored (v1 files: 64 bytes, no tsc_resume / cr3)."""
        return RECORD_DTYPES[self._abi]

    def chunks(self, cpu: int | None = None) -> list[int]:
        rows = range(len(self.index))
        return [i for i in rows if cpu is None or int(self.index[i]["cpu"]) == cpu]

    def iter_chunks(self, cpu: int | None = None) -> list[tuple[int, Records]]:
        """(chunk number, records) of every readable chunk; bad ones go to ``errors`` and are skipped."""
        out = []
        for i in self.chunks(cpu):
            try:
                out.append((i, self.read_chunk(i)))
            except TraceError:
                continue  # recorded in errors by _skip
        return out

    def records(self, cpu: int | None = None, *, ordered: bool = True) -> Records:
        """Every readable record (of one CPU or all), in time order by default."""
        parts = [r for _, r in self.iter_chunks(cpu) if len(r)]
        recs = np.concatenate(parts) if parts else empty()
        return time_order(recs) if ordered else recs

    @property
    def cpus(self) -> list[int]:
        return sorted({int(c) for c in self.index["cpu"]})

    def lost(self) -> dict[int, int]:
        """Records lost per CPU (from the chunk headers: survives a killed capture)."""
        out: dict[int, int] = {}
        for row in self.index:
            if int(row["lost_before"]):
                out[int(row["cpu"])] = out.get(int(row["cpu"]), 0) + int(row["lost_before"])
        return out

    def skipped(self) -> dict[int, int]:
        """Records per CPU in chunks skipped as damaged (known from their header or the index)."""
        out: dict[int, int] = {}
        for e in self.errors:
            if e.cpu is not None and e.records:
                out[e.cpu] = out.get(e.cpu, 0) + e.records
        return out

    @property
    def damage(self) -> Damage:
        """Skipped chunks and records, and a damaged index: the same numbers for every command."""
        return Damage(
            chunks=len(self.errors),
            records=sum(self.skipped().values()),
            unknown=sum(1 for e in self.errors if e.records is None),
            index=self.index_error,
            problems=tuple(str(e) for e in self.errors),
        )

    def lost_total(self) -> int:
        """Every record known lost: ring/stream losses (chunk headers) plus those in skipped chunks."""
        return sum(self.lost().values()) + sum(self.skipped().values())

    def damage_warning(self) -> str | None:
        """The one warning line every command prints for a damaged file (None when it is intact)."""
        dmg = self.damage
        return dmg.line(self.path) if dmg else None

    @property
    def code(self) -> dict[int, bytes]:
        """Instruction bytes per RIP stored by the capture (summary ``code``); empty for files without it
        (older files, captures without readable guest memory, or killed captures: no summary)."""
        if self._code is None:
            self._code = decode_code((self.summary or {}).get("code"))
        return self._code

    @property
    def record_count(self) -> int:
        """Records in the readable chunks."""
        bad = sum(int(self.index["count"][i]) for i in self._bad)
        return int(self.index["count"].sum()) - bad
