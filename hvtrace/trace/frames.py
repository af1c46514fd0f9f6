"""FrameStreamSource: exit records from the port-0xE9 byte stream (abi.h HV_FRAME_*), e.g. Bochs' stdout.

A frame is HV_FRAME_MAGIC (u32 LE), the 64-byte record, then zlib.crc32 of the record (u32 LE).
Console text shares the stream; the reader finds frames by their magic (vectorised), checks each CRC,
counts bad frames and resynchronises at the next magic. The stream numbers every exit per CPU (seq =
exits so far on that CPU, dropped from the rings or not), so gaps in seq are counted as lost records.
The file may still be growing: an incomplete frame at its end waits for the next poll.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hvtrace.abi import HV_FRAME_MAGIC, HV_FRAME_SIZE, HV_RECORD_SIZE
from hvtrace.exitcodes import ExitCode
from hvtrace.trace.errors import TraceError
from hvtrace.trace.records import RECORD_DTYPE, Records, empty

_MAGIC = struct.pack("<I", HV_FRAME_MAGIC)


@dataclass
class FrameStats:
    frames: int = 0
    bad_frames: int = 0  # magic found, checksum wrong
    text_bytes: int = 0  # bytes that were not part of a good frame (console text, garbage)
    lost: dict[int, int] = field(default_factory=dict)  # per CPU: seq gaps


def decode_frames(buf: bytes, final: bool = False) -> tuple[Records, int, int, int]:
    """Frames in ``buf``: (records, bytes consumed, bad frames, non-frame bytes).

    Unless ``final``, bytes from a magic too close to the end to hold a whole frame are left unconsumed.
    """
    arr = np.frombuffer(buf, dtype=np.uint8)
    n = len(arr)
    if n < 4:
        return empty(), (n if final else 0), 0, (n if final else 0)
    m = _MAGIC
    cand = np.flatnonzero((arr[:-3] == m[0]) & (arr[1:-2] == m[1]) & (arr[2:-1] == m[2]) & (arr[3:] == m[3]))
    good: list[int] = []
    bad = 0
    next_free = 0
    consumed = n if final else max(0, n - 3)  # a partial magic may straddle the end
    for c in cand.tolist():
        if c < next_free:
            continue
        if c + HV_FRAME_SIZE > n:
            if not final:
                consumed = c
            break
        rec = buf[c + 4 : c + 4 + HV_RECORD_SIZE]
        (crc,) = struct.unpack_from("<I", buf, c + 4 + HV_RECORD_SIZE)
        if zlib.crc32(rec) == crc:
            good.append(c)
            next_free = c + HV_FRAME_SIZE
        else:
            bad += 1
    # A good frame may end inside the last 3 bytes kept back for a straddling magic: never hand its
    # tail back to the next poll (it would be counted again, as text).
    consumed = max(consumed, next_free)
    if good:
        idx = np.asarray(good, dtype=np.int64)[:, None] + 4 + np.arange(HV_RECORD_SIZE)[None, :]
        recs = arr[idx].reshape(-1).view(RECORD_DTYPE).copy()
    else:
        recs = empty()
    text = consumed - len(good) * HV_FRAME_SIZE
    return recs, consumed, bad, text


class FrameStreamSource:
    """Follows a (growing) file of port-0xE9 bytes; :meth:`poll` returns new records."""

    def __init__(self, path: Path, *, alive: Callable[[], bool] | None = None) -> None:
        self.path = Path(path)
        self.name = f"frame stream {self.path}"
        self._alive = alive
        self._fh: object = None
        self._buf = b""
        self._pos = 0
        self.stats = FrameStats()
        self._last_seq: dict[int, int] = {}

    def alive(self) -> bool:
        return self._alive() if self._alive is not None else False

    def _read_new(self) -> bytes:
        try:
            with self.path.open("rb") as fh:
                fh.seek(self._pos)
                data = fh.read()
        except FileNotFoundError:
            if self.alive():
                return b""
            raise TraceError(ExitCode.NO_INPUT, f"{self.name} does not exist") from None
        self._pos += len(data)
        return data

    def poll(self, final: bool = False) -> Records:
        """Records of the frames completed since the last poll; ``final`` flushes a trailing fragment."""
        self._buf += self._read_new()
        recs, used, bad, text = decode_frames(self._buf, final=final)
        self._buf = self._buf[used:]
        self.stats.frames += len(recs)
        self.stats.bad_frames += bad
        self.stats.text_bytes += text
        if len(recs):
            self._count_gaps(recs)
        return recs

    def _count_gaps(self, recs: Records) -> None:
        cpus = recs["cpu"]
        for cpu in np.unique(cpus).tolist():
            # uint64 throughout: seq is a u64 and a damaged or forged frame may carry any value, so
            # int64 differences (and their sum) could wrap negative. Only forward steps count as gaps
            # (a step back is a restart); the few non-zero gaps are summed as Python ints.
            seqs = np.concatenate(([np.uint64(self._last_seq.get(cpu, 0))], recs["seq"][cpus == cpu]))
            prev, nxt = seqs[:-1], seqs[1:]
            fwd = nxt > prev
            steps = nxt[fwd] - prev[fwd] - np.uint64(1)
            gaps = sum(steps[steps > 0].tolist())
            if gaps:
                self.stats.lost[cpu] = self.stats.lost.get(cpu, 0) + gaps
            self._last_seq[cpu] = int(seqs[-1])

    @property
    def lost(self) -> int:
        return sum(self.stats.lost.values())
