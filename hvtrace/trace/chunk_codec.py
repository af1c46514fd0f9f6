"""Compression of a chunk's (byte-shuffled) payload, named by the chunk's flags (docs/trace-format.md).

New files use zstd level 3 (FLAG_ZSTD), chosen on benchmarks/trace_codecs.py: on real captures it
compresses as well as zlib level 1 or better and decodes several times faster, which is what
`hvtrace report` spends its time on. zlib (FLAG_ZLIB) stays readable forever; a payload with neither
flag is stored as it is.
"""

from __future__ import annotations

import zlib
from typing import Final

import zstandard

from hvtrace.trace.fileformat import FLAG_ZLIB, FLAG_ZSTD

#: The codec flag and level a writer uses unless told otherwise.
DEFAULT_FLAG: Final = FLAG_ZSTD
ZSTD_LEVEL: Final = 3


class CodecError(ValueError):
    """A payload that does not decode to exactly the expected size (the message says why)."""


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


_ZSTD = zstandard.ZstdDecompressor()


def decode(payload: bytes | memoryview, flags: int, want: int) -> bytes | memoryview:
    """The ``want`` bytes of a payload; a damaged or hostile one (bomb, wrong size) is a CodecError
    and never makes an allocation bigger than ``want`` + 1."""
    if flags & FLAG_ZSTD and flags & FLAG_ZLIB:
        raise CodecError(f"conflicting codec flags {flags:#x}")
    if flags & FLAG_ZSTD:
        try:
            size = zstandard.frame_content_size(payload)
        except zstandard.ZstdError:
            size = -2
        if size != want:  # -1: size not in the frame (not ours); checked before anything is allocated
            raise CodecError("wrong payload length" if size >= 0 else "bad compressed data (zstd frame)")
        try:
            return _ZSTD.decompress(payload, max_output_size=want)
        except zstandard.ZstdError as e:
            raise CodecError(f"bad compressed data ({e})") from None
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
    return payload
