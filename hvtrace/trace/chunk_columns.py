"""The columnar chunk layout (chunk flag FLAG_COLUMNS, format version 2; docs/trace-format.md).

`hvtrace report` reads six fields of a record (kind, reason, tsc, tsc_resume, arg0, gpa). In the
byte-shuffled layout they cost a decompression of every byte of every record plus a gather of their
byte planes back into values, which was most of the report's time. Here a chunk's payload is two
frames of the chunk's codec:

- frame A: the report's fields as plain little-endian columns, each at the narrowest width (1, 2, 4
  or 8 bytes) that holds its values, ``tsc`` as the difference from the previous record's and
  ``tsc_resume`` as ``tsc_resume - tsc`` (both modulo 2^64, so nothing is lost whatever the values);
  a column decodes to a numpy array with no gather, and narrow columns compress well unshuffled;
- frame B: every other field, byte-shuffled as in the classic layout (rebuilt only by readers of whole
  records).

Payload: ``u32 length of frame A | u8 width of each A column (8 slots) | u64 first TSC | frame A |
frame B``. The widths are outside the frames, so a reader knows both frames' sizes before it
decompresses anything (the codecs refuse a frame that does not decode to exactly that size).
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Sequence
from typing import Any, Final

import numpy as np

from hvtrace.trace import chunk_codec
from hvtrace.trace.chunk_codec import CodecError, field_layout

#: The fields of frame A, in this order (those the record layout has).
COLUMN_FIELDS: Final = ("kind", "reason", "tsc", "tsc_resume", "arg0", "gpa")
_PREFIX: Final = struct.Struct("<I8sQ")
_WIDTHS: Final = (1, 2, 4, 8)

Columns = dict[str, np.ndarray[Any, Any]]


_Layout = tuple[list[str], list[tuple[str, int, int]], dict[str, np.dtype[Any]]]


@functools.cache
def _layout(dtype: np.dtype[np.void]) -> _Layout:
    """Frame A's fields, frame B's (name, offset, size) and every field's type, of a record layout
    (cached: building them was a good part of a chunk's decode)."""
    names = dtype.names or ()
    types = {n: dtype.fields[n][0] for n in names}  # type: ignore[index]
    b = [(n, off, size) for n, off, size in field_layout(dtype) if n not in COLUMN_FIELDS]
    return [f for f in COLUMN_FIELDS if f in names], b, types


def _narrow(values: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    top = int(values.max()) if len(values) else 0
    width = next(w for w in _WIDTHS if top < 1 << (8 * w))
    return values.astype(f"<u{width}", copy=False)


def encode(recs: np.ndarray[Any, Any], flag: int, level: int | None = None) -> bytes:
    """A chunk's payload in the columnar layout, each frame compressed with the codec of ``flag``."""
    dtype = recs.dtype
    tsc = recs["tsc"].astype(np.uint64)
    base = int(tsc[0]) if len(tsc) else 0
    cols = []
    a_fields, b_fields, _types = _layout(dtype)
    for name in a_fields:
        if name == "tsc":
            values = np.diff(tsc, prepend=np.uint64(base))  # modulo 2^64 (numpy integer arrays wrap)
        elif name == "tsc_resume":
            values = recs["tsc_resume"].astype(np.uint64) - tsc
        else:
            values = recs[name]
        cols.append(_narrow(values))
    widths = bytes(c.dtype.itemsize for c in cols)
    frame_a = chunk_codec.encode(b"".join(c.tobytes() for c in cols), flag, level)
    b_raw = b"".join(
        np.ascontiguousarray(recs[n]).view(np.uint8).reshape(-1, size).T.tobytes() for n, _o, size in b_fields
    )
    frame_b = chunk_codec.encode(b_raw, flag, level)
    return _PREFIX.pack(len(frame_a), widths, base) + frame_a + frame_b


def _frames(payload: bytes | memoryview) -> tuple[bytes, int, memoryview, memoryview]:
    """The prefix's widths and first TSC, and the two frames (views of ``payload``)."""
    if len(payload) < _PREFIX.size:
        raise CodecError("columnar payload shorter than its prefix")
    len_a, widths, base = _PREFIX.unpack_from(payload)
    view = memoryview(payload)
    if len_a > len(view) - _PREFIX.size:
        raise CodecError("columnar frame length beyond the payload")
    return widths, base, view[_PREFIX.size : _PREFIX.size + len_a], view[_PREFIX.size + len_a :]


def decode(
    payload: bytes | memoryview, flags: int, count: int, dtype: np.dtype[np.void], names: Sequence[str]
) -> Columns:
    """The named fields of a columnar chunk's ``count`` records as unsigned integer arrays (frame A's
    fields may come in a narrower type than the record's: the same values, widened when copied into a
    record or a batch); frame B is decompressed only when a name is in it. A CodecError when the
    payload does not decode."""
    widths, base, frame_a, frame_b = _frames(payload)
    a_fields, b_layout, types = _layout(dtype)
    ws = list(widths[: len(a_fields)])
    if any(w not in _WIDTHS or w > types[n].itemsize for n, w in zip(a_fields, ws, strict=True)):
        raise CodecError(f"bad column widths {ws}")
    out: Columns = {}
    raw_a = np.frombuffer(chunk_codec.decode(frame_a, flags, count * sum(ws)), dtype=np.uint8)
    pos = 0
    stored: Columns = {}
    for n, w in zip(a_fields, ws, strict=True):
        stored[n] = raw_a[pos : pos + count * w].view(f"<u{w}")
        pos += count * w
    if "tsc" in names or "tsc_resume" in names:
        tsc = np.cumsum(stored["tsc"], dtype=np.uint64)
        tsc += np.uint64(base)
    for n in names:
        if n == "tsc":
            out[n] = tsc
        elif n == "tsc_resume" and n in stored:
            out[n] = tsc + stored[n]
        elif n in stored:
            out[n] = stored[n]  # as stored: a narrower unsigned type holding the same values
    b_names = [n for n in names if n in types and n not in stored]
    if b_names:
        raw_b = np.frombuffer(
            chunk_codec.decode(frame_b, flags, count * sum(s for *_x, s in b_layout)), np.uint8
        )
        pos = 0
        for n, _off, size in b_layout:
            if n in b_names:
                out[n] = chunk_codec.values_of(raw_b[pos : pos + size * count].reshape(size, count), types[n])
            pos += size * count
    return out
