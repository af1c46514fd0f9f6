"""Compression of a chunk's (byte-shuffled) payload, named by the chunk's flags (docs/trace-format.md).

New files use zstd level 3 (FLAG_ZSTD), chosen on benchmarks/trace_codecs.py over real captures: it
compresses better than zlib level 1 (16.8x vs 15.0x, 4.8 vs 5.4 bytes a record) and decodes ~30 times
faster (GB/s), which is what `hvtrace report` spends its time on. lz4 decodes faster still but makes
files ~15 % bigger; one zstd frame per record field (so a report would decode only its fields) made
files bigger and decoded the report's fields slower than one frame of everything. zlib (FLAG_ZLIB)
stays readable forever; a payload with no codec flag is stored as it is.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Sequence
from typing import Any, Final

import numpy as np
import zstandard

from hvtrace.trace.fileformat import FLAG_SHUFFLE, FLAG_ZLIB, FLAG_ZSTD

#: The codec flags and level a writer uses unless told otherwise.
DEFAULT_FLAG: Final = FLAG_ZSTD
ZSTD_LEVEL: Final = 3


class CodecError(ValueError):
    """A payload that does not decode to exactly the expected size (the message says why)."""


Planes = dict[str, np.ndarray[Any, np.dtype[np.uint8]]]  # field -> its byte planes (size x count)


def field_layout(dtype: np.dtype[np.void]) -> list[tuple[str, int, int]]:
    """(name, offset, size) of the record's fields in offset order (they tile the record exactly)."""
    assert dtype.fields is not None
    out = sorted(((n, int(f[1]), f[0].itemsize) for n, f in dtype.fields.items()), key=lambda x: x[1])
    assert sum(size for _n, _o, size in out) == dtype.itemsize, "fields must tile the record"
    return out


def encode(raw: bytes, flag: int = DEFAULT_FLAG, level: int | None = None) -> bytes:
    """``raw`` compressed with the codec of ``flag`` (FLAG_ZSTD, FLAG_ZLIB or 0 = stored)."""
    if flag == FLAG_ZSTD:
        # write_content_size (the default) lets the reader check the size before allocating
        return zstandard.ZstdCompressor(level=ZSTD_LEVEL if level is None else level).compress(raw)
    if flag == FLAG_ZLIB:
        return zlib.compress(raw, 1 if level is None else level)
    if flag == 0:
        return raw
    raise ValueError(f"unknown codec flag {flag:#x}")


# A ZstdDecompressor is not safe to use from two threads at once (query decodes chunks on two): one
# per thread. Sharing one made concurrent chunk reads fail as "Data corruption detected" now and then.
_local = threading.local()


def _decompressor() -> zstandard.ZstdDecompressor:
    d: zstandard.ZstdDecompressor | None = getattr(_local, "zstd", None)
    if d is None:
        d = _local.zstd = zstandard.ZstdDecompressor()
    return d


def _zstd(payload: bytes | memoryview, want: int) -> bytes:
    try:
        size = zstandard.frame_content_size(payload)
    except zstandard.ZstdError:
        size = -2
    if size != want:  # -1: size not in the frame (not ours); checked before anything is allocated
        raise CodecError("wrong payload length" if size >= 0 else "bad compressed data (zstd frame)")
    try:
        return _decompressor().decompress(payload, max_output_size=want)
    except zstandard.ZstdError as e:
        raise CodecError(f"bad compressed data ({e})") from None


def decode_planes(
    payload: bytes | memoryview, flags: int, count: int, dtype: np.dtype[np.void], names: Sequence[str]
) -> Planes:
    """The byte planes (size x count, u8; views of one decompressed payload) of the named fields of a
    chunk's ``count`` records. A CodecError when the payload does not decode."""
    layout = {n: (off, size) for n, off, size in field_layout(dtype)}
    raw = decode(payload, flags, count * dtype.itemsize)
    flat = np.frombuffer(raw, dtype=np.uint8)
    whole = flat.reshape(dtype.itemsize, count) if flags & FLAG_SHUFFLE else flat.reshape(count, -1).T
    return {n: whole[layout[n][0] : layout[n][0] + layout[n][1]] for n in names}


def values_of(planes: np.ndarray[Any, np.dtype[np.uint8]], dtype: np.dtype[Any]) -> np.ndarray[Any, Any]:
    """A field's values from its byte planes (size x count): byte j of every value from plane j,
    contiguous reads and strided writes (measured the fastest way with numpy)."""
    size, count = planes.shape
    out = np.empty(count, dtype)
    if size == 1:
        out[:] = planes[0]
        return out
    dst = out.view(np.uint8)
    for j in range(size):
        dst[j::size] = planes[j]
    return out


def decode(payload: bytes | memoryview, flags: int, want: int) -> bytes:
    """The ``want`` bytes of a payload; a damaged or hostile one (bomb, wrong size) is a CodecError
    and never makes an allocation bigger than ``want`` + 1."""
    if flags & FLAG_ZSTD and flags & FLAG_ZLIB:
        raise CodecError(f"conflicting codec flags {flags:#x}")
    if flags & FLAG_ZSTD:
        return _zstd(payload, want)
    if flags & FLAG_ZLIB:
        d = zlib.decompressobj()
        try:
            raw = d.decompress(payload, want + 1)  # max_length: a bomb stops one byte past the size
        except zlib.error as e:
            raise CodecError(f"bad compressed data ({e})") from None
        if not d.eof or len(raw) != want:  # more output pending or stream incomplete: wrong either way
            raise CodecError("wrong payload length")
        return raw
    if len(payload) != want:
        raise CodecError("wrong payload length")
    return bytes(payload)  # a copy: no view of the file is kept
