"""The trace file's layout (docs/trace-format.md): magics, header / chunk / trailer structs, the index
row, limits, the byte shuffle of a chunk's records, the summary's code map, metadata checks and
what damage is reported as. Shared by the writer (hvtrace.trace.writer) and the reader
(hvtrace.trace.tracefile)."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from hvtrace.abi import HV_RECORD_SIZE
from hvtrace.exitcodes import ExitCode
from hvtrace.trace.errors import TraceError
from hvtrace.trace.records import RECORD_DTYPE, Records

FILE_MAGIC: Final = b"HVTRACE\x00"
#: The newest format version this hvtrace reads and writes: 3 = chunks may carry a summary of their
#: records (FLAG_SUMMARY); 2 = chunks may use the columnar layout (FLAG_COLUMNS). A writer told not to
#: write summaries writes version 2, one of classic chunks only version 1: what older readers take.
FORMAT_VERSION: Final = 3
FORMAT_VERSION_COLUMNS: Final = 2
FORMAT_VERSION_CLASSIC: Final = 1
CHUNK_MAGIC: Final = b"HVCK"
INDEX_MAGIC: Final = b"HVIX"
TRAILER_MAGIC: Final = b"HVTREND\x00"

# file header: magic, format version, ABI version, metadata length, metadata CRC-32
FILE_HEADER: Final = struct.Struct("<8sHHII")
# chunk header: magic, cpu, flags, count, first/last seq, first/last tsc, lost_before, payload len,
# payload CRC-32, header CRC-32 (of the preceding 64 bytes)
CHUNK_HEADER: Final = struct.Struct("<4sHHIQQQQQIII")
# trailer: index offset, index length, index CRC-32, magic
TRAILER: Final = struct.Struct("<QII8s")

FLAG_ZLIB: Final = 1
FLAG_SHUFFLE: Final = 2
FLAG_ZSTD: Final = 4  # new files (hvtrace.trace.chunk_codec); zlib files stay readable
FLAG_COLUMNS: Final = 8  # columnar payload (hvtrace.trace.chunk_columns; format version 2, new files)
FLAG_SUMMARY: Final = 16  # the payload starts with a summary of the records (chunk_summary; format 3)
#: Records a writer puts in a chunk (benchmarks/report_throughput.py: with summaries, bigger chunks mean
#: fewer summaries to merge; 16384 v2 records are 1.25 MiB before compression).
DEFAULT_CHUNK_RECORDS: Final = 16384

INDEX_DTYPE: Final = np.dtype(
    [
        ("offset", "<u8"),
        ("cpu", "<u2"),
        ("count", "<u4"),
        ("first_seq", "<u8"),
        ("last_seq", "<u8"),
        ("first_tsc", "<u8"),
        ("last_tsc", "<u8"),
        ("lost_before", "<u8"),
    ]
)


#: Most records one chunk may hold. The writer never exceeds it; the reader refuses more, so a damaged or
#: hostile count (u32: up to 256 GiB of records) never sizes an allocation or a decompression.
MAX_CHUNK_RECORDS: Final = 1 << 20
#: Flag bits this reader understands; a chunk with any other bit set is refused.
KNOWN_FLAGS: Final = FLAG_ZLIB | FLAG_SHUFFLE | FLAG_ZSTD | FLAG_COLUMNS | FLAG_SUMMARY
#: Metadata keys the tools compute with, and the JSON types they must have (checked when opening).
META_TYPES: Final[dict[str, tuple[type, ...]]] = {
    "vendor": (int,),
    "cpus": (int,),
    "tsc_hz": (int, float),
}


@dataclass
class ChunkError:
    """A part of the file that was skipped: a chunk (``index`` = its row in the index) or, when its header
    itself is damaged, a region (``index`` None: its records are unknown)."""

    index: int | None
    offset: int
    message: str
    records: int | None = None  # records the skipped chunk held (from its header / the index)
    cpu: int | None = None

    def __str__(self) -> str:
        where = f"chunk {self.index}" if self.index is not None else "damaged chunk header"
        return f"{where} at offset {self.offset}: {self.message}"


@dataclass(frozen=True)
class Damage:
    """What a damaged file cost: every command reports it with :meth:`line` and exits ``ExitCode.DAMAGED``."""

    chunks: int  # chunks (or damaged regions) skipped
    records: int  # records in the skipped chunks whose count is known
    unknown: int  # skipped regions whose record count is unknown (their header is damaged)
    index: str | None  # what was wrong with the index, when it had to be rebuilt by scanning
    problems: tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.chunks or self.index)

    def line(self, name: object) -> str:
        """The one warning line: what was skipped, how many records with it, the first problem."""
        parts = []
        if self.chunks:
            n = f"{self.records}" if not self.unknown else f"at least {self.records}"
            more = f", and {self.chunks - 1} more" if self.chunks > 1 else ""
            parts.append(
                f"{self.chunks} chunk{'s' if self.chunks != 1 else ''} skipped, {n} records lost "
                f"({self.problems[0]}{more})"
            )
        if self.index:
            parts.append(f"{self.index} (its summary, e.g. the code map, is lost)")
        return f"{name} is damaged: {'; '.join(parts)}; the result is partial"


def json_object(blob: bytes, what: str, name: object) -> dict[str, Any]:
    """A JSON object from bytes; anything else (bad UTF-8, bad JSON, absurd nesting) is BAD_DATA."""
    try:
        obj = json.loads(blob)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise TraceError(ExitCode.BAD_DATA, f"{name}: {what} is not valid JSON") from None
    if not isinstance(obj, dict):
        raise TraceError(ExitCode.BAD_DATA, f"{name}: {what} is not a JSON object")
    return obj


def check_meta(meta: dict[str, Any], name: object) -> None:
    for key, types in META_TYPES.items():
        v = meta.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, types)):
            raise TraceError(ExitCode.BAD_DATA, f"{name}: metadata {key!r} has a wrong type ({v!r:.40})")
    hz = meta.get("tsc_hz")
    if hz is not None and not 0 < hz < 1e15:  # also refuses NaN
        raise TraceError(ExitCode.BAD_DATA, f"{name}: metadata 'tsc_hz' is out of range ({hz!r:.40})")


def encode_code(code: dict[int, bytes]) -> dict[str, str]:
    """The summary's code map: ``{"0x1000": "0fa2"}`` (RIP in hex -> instruction bytes in hex)."""
    return {f"{rip:#x}": bytes(raw).hex() for rip, raw in sorted(code.items())}


def decode_code(obj: object) -> dict[int, bytes]:
    """Inverse of :func:`encode_code`; malformed entries are skipped (an unknown instruction, no error)."""
    out: dict[int, bytes] = {}
    if not isinstance(obj, dict):
        return out
    for key, value in obj.items():
        try:
            out[int(str(key), 16)] = bytes.fromhex(str(value))
        except ValueError:
            continue
    return out


def shuffle(recs: Records) -> bytes:
    """Byte-transpose: all first bytes, then all second bytes... (compresses 3-5x better)."""
    return np.ascontiguousarray(recs.view(np.uint8).reshape(-1, HV_RECORD_SIZE).T).tobytes()


def unshuffle(data: bytes, count: int, dtype: np.dtype[np.void] = RECORD_DTYPE) -> Records:
    b = np.frombuffer(data, dtype=np.uint8).reshape(dtype.itemsize, count)
    return np.ascontiguousarray(b.T).reshape(-1).view(dtype)
