"""The guest instruction at an exit's RIP: bytes from a code reader, text from capstone, cached per RIP.

Records carry ``rip`` and ``insn_len`` but no instruction bytes. A *code reader* gives the bytes at a RIP:

- :class:`MemoryCode`: live (or dumped) guest-physical memory, e.g. the shared RAM file of a QEMU
  session. RIP is used as the physical address: the hypervisor's own guests (the self-test and storm
  guests) share its identity-mapped page tables (blue pill), so virtual == physical. A guest with its
  own paging (Linux) needs a walk of the guest's page tables from its CR3 first: future work.
- :class:`CodeMap`: the bytes a capture stored in its trace file (``TraceFile.code``), for replays.

:class:`CodeCache` turns a RIP into text (``cpuid``) once per RIP: a storm exits at a handful of RIPs
millions of times, and only the rows on screen are formatted. :class:`CodeCollector` is the capture
side: the distinct RIPs of each batch (``np.unique``) are read once, while the memory is readable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Protocol

import numpy as np

from hvtrace import disasm
from hvtrace.trace.errors import TraceError
from hvtrace.trace.records import Records
from hvtrace.trace.sources import MemorySource

#: What the log shows when the bytes at a RIP are unknown (no code map entry, unreadable memory).
UNKNOWN: Final = "?"
#: Distinct RIPs a capture stores at most (a guest with its own paging could have very many).
MAX_CODE_RIPS: Final = 1 << 16
PAGE: Final = 0x1000


class CodeReader(Protocol):
    """Instruction bytes at a RIP (up to :data:`hvtrace.disasm.MAX_INSN`), or None when unknown."""

    live: bool  # True: the bytes come from memory that can change (re-reading may give other bytes)

    def read(self, rip: int) -> bytes | None: ...


class MemoryCode:
    """Bytes from guest-physical memory at RIP (identity-mapped guests only: see the module docstring).

    Reads up to 15 bytes, fewer when the memory (a RAM segment, or the readable page) ends sooner.
    """

    def __init__(self, mem: MemorySource, *, live: bool = True) -> None:
        self.mem = mem
        self.live = live

    def _limit(self, rip: int) -> int | None:
        """Bytes readable at ``rip`` (at most MAX_INSN) when the source tells its segments, else None."""
        segments = getattr(self.mem, "segments", None)
        if not callable(segments):
            return None
        for seg in segments():
            if seg.paddr <= rip < seg.paddr + seg.size:
                return min(disasm.MAX_INSN, int(seg.paddr + seg.size - rip))
        return 0

    def read(self, rip: int) -> bytes | None:
        if rip < 0:
            return None
        n = self._limit(rip)
        tries = [disasm.MAX_INSN, PAGE - (rip & (PAGE - 1))] if n is None else [n]
        for size in tries:
            if not 0 < size <= disasm.MAX_INSN:
                continue
            try:
                data = self.mem.read(rip, size)
            except (TraceError, ValueError, OSError, OverflowError):  # unbacked, or the mapping closed
                continue
            return bytes(data) or None
        return None


class CodeMap:
    """Bytes stored by a capture (``{rip: bytes}``): a trace file's code map."""

    live = False

    def __init__(self, code: Mapping[int, bytes]) -> None:
        self.code = code

    def read(self, rip: int) -> bytes | None:
        return self.code.get(rip) or None


@dataclass(frozen=True)
class Decoded:
    text: str  # "cpuid"; "(bad)" when the bytes do not decode
    size: int  # decoded length; 0 when the bytes do not decode


def decode(code: bytes, rip: int) -> Decoded | None:
    """One instruction at ``rip``; None when capstone is unavailable."""
    if not disasm.available():
        return None
    insn = disasm.instruction(code, rip)
    return Decoded("(bad)", 0) if insn is None else Decoded(insn.text, insn.size)


class CodeCache:
    """RIP -> instruction text, one read and one decode per RIP.

    ``text(rip, insn_len)``: with a known length (the record's ``insn_len``, non-zero) that differs from
    the decoded one, the memory probably changed since the exit: a live reader is asked once more, and if
    the lengths still differ the text is shown with the mismatch, ``cpuid [len 2!=3]``.
    """

    def __init__(self, reader: CodeReader | None, *, limit: int = MAX_CODE_RIPS) -> None:
        self.reader = reader
        self.limit = limit
        self._cache: dict[int, Decoded | None] = {}
        self._reread: set[int] = set()
        self.reads = 0  # reader calls (the cache's tests count them)

    def __len__(self) -> int:
        return len(self._cache)

    def clear(self) -> None:
        self._cache.clear()
        self._reread.clear()

    def _load(self, rip: int) -> Decoded | None:
        assert self.reader is not None
        self.reads += 1
        try:
            code = self.reader.read(rip)
        except (TraceError, ValueError, OSError):
            code = None
        return decode(code, rip) if code else None

    def lookup(self, rip: int) -> Decoded | None:
        """The decoded instruction at ``rip``; None when its bytes are unknown (or no capstone)."""
        if self.reader is None:
            return None
        if rip in self._cache:
            return self._cache[rip]
        if len(self._cache) >= self.limit:
            self.clear()
        got = self._cache[rip] = self._load(rip)
        return got

    def text(self, rip: int, insn_len: int = 0) -> str:
        """The instruction at ``rip`` as text; "" without a reader, :data:`UNKNOWN` for unknown bytes."""
        if self.reader is None:
            return ""
        got = self.lookup(rip)
        if got is None:
            return UNKNOWN
        if insn_len and got.size and got.size != insn_len:
            if self.reader.live and rip not in self._reread:
                self._reread.add(rip)
                got = self._cache[rip] = self._load(rip)
                if got is None:
                    return UNKNOWN
            if got.size != insn_len:
                return f"{got.text} [len {got.size}!={insn_len}]"
        return got.text


class CodeCollector:
    """Capture side: the instruction bytes of every distinct RIP seen, read when first seen.

    ``add(records)`` costs one ``np.unique`` of the batch's RIPs plus one read per new RIP; RIPs that
    cannot be read are not retried. The bytes kept are the decoded instruction's (all bytes read when
    they do not decode or capstone is missing). At most :data:`MAX_CODE_RIPS` RIPs are kept.
    """

    def __init__(self, reader: CodeReader | None, *, limit: int = MAX_CODE_RIPS) -> None:
        self.reader = reader
        self.limit = limit
        self.code: dict[int, bytes] = {}
        self._seen: set[int] = set()

    def add(self, recs: Records) -> None:
        if self.reader is None or not len(recs) or len(self._seen) >= self.limit:
            return
        for rip in np.unique(recs["rip"]).tolist():
            if rip in self._seen:
                continue
            if len(self._seen) >= self.limit:
                return
            self._seen.add(rip)
            try:
                code = self.reader.read(rip)
            except (TraceError, ValueError, OSError):
                code = None
            if not code:
                continue
            insn = disasm.instruction(code, rip)
            self.code[rip] = insn.raw if insn is not None else code
