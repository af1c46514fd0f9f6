"""The guest instruction at an exit's RIP: bytes from a code reader, text from capstone, cached per RIP.

Records carry ``rip`` and ``insn_len`` but no instruction bytes. A *code reader* gives the bytes at a RIP:

- :class:`MemoryCode`: live (or dumped) guest-physical memory, e.g. the shared RAM file of a QEMU
  session. RIP is used as the physical address: the hypervisor's own guests (the self-test and storm
  guests) share its identity-mapped page tables (blue pill), so virtual == physical.
- :class:`PagedCode`: the same memory for a guest with its own paging (Linux): RIP goes through a walk
  of the guest's page tables from the record's CR3 (ABI v2), see :func:`paged_physical`.
- :class:`CodeMap`: the bytes a capture stored in its trace file (``TraceFile.code``), for replays.

Code map keys (:func:`code_key`): the RIP, or for a paged guest's lower-half RIP ``cr3 << 64 | rip``
(each process has its own code there; the kernel half is mapped alike in every address space).

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
from hvtrace.decode import guest_paging
from hvtrace.trace.errors import TraceError
from hvtrace.trace.records import Records
from hvtrace.trace.sources import MemorySource

#: What the log shows when the bytes at a RIP are unknown (no code map entry, unreadable memory).
UNKNOWN: Final = "?"
#: Distinct RIPs a capture stores at most (a guest with its own paging could have very many).
MAX_CODE_RIPS: Final = 1 << 16
PAGE: Final = 0x1000
#: Kernel half of a canonical address space: shared by every CR3 (a paged guest's code key is the RIP).
KERNEL_HALF: Final = 0xFFFF_8000_0000_0000


def code_key(rip: int, cr3: int, paged: bool) -> int:
    """The code map key of an exit: see the module docstring."""
    if not paged or not cr3 or rip >= KERNEL_HALF:
        return rip
    return (cr3 & guest_paging.ADDR_MASK) << 64 | rip


class CodeReader(Protocol):
    """Instruction bytes at a RIP (up to :data:`hvtrace.disasm.MAX_INSN`), or None when unknown.
    ``cr3`` is the record's (0 when unknown); readers of identity-mapped memory ignore it."""

    live: bool  # True: the bytes come from memory that can change (re-reading may give other bytes)
    paged: bool  # True: the bytes depend on the CR3 (code keys: code_key)

    def read(self, rip: int, cr3: int = 0) -> bytes | None: ...


class MemoryCode:
    """Bytes from guest-physical memory at RIP (identity-mapped guests only: see the module docstring).

    Reads up to 15 bytes, fewer when the memory (a RAM segment, or the readable page) ends sooner.
    """

    paged = False

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

    def read(self, rip: int, cr3: int = 0) -> bytes | None:
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


def paged_physical(read: guest_paging.Reader, cr3: int, linear: int) -> int | None:
    """``linear`` through a long-mode guest's tables (records carry CR3, not CR0/CR4/EFER: a paged guest
    with a 64-bit RIP is in long mode): 4-level paging first, then 5-level (SDM Vol. 3A 4.5)."""
    for cr4 in (guest_paging.CR4_PAE, guest_paging.CR4_PAE | guest_paging.CR4_LA57):
        p = guest_paging.GuestPaging(guest_paging.CR0_PG, cr3, cr4, guest_paging.EFER_LMA)
        try:
            phys = p.to_physical(read, linear)
        except (TraceError, ValueError, OSError, OverflowError):
            phys = None
        if phys is not None:
            return phys
    return None


class PagedCode:
    """Bytes at a paged guest's RIP: a walk of its page tables from the record's CR3 in guest-physical
    memory, then a read of each page the instruction spans. CR3 0 (unknown: v1 records) reads RIP as a
    physical address, like :class:`MemoryCode`."""

    paged = True

    def __init__(self, mem: MemorySource, *, live: bool = True) -> None:
        self.phys = MemoryCode(mem, live=live)
        self.live = live

    def _read_phys(self, addr: int, n: int) -> bytes:
        return bytes(self.phys.mem.read(addr, n))

    def read(self, rip: int, cr3: int = 0) -> bytes | None:
        if not cr3:
            return self.phys.read(rip)
        out = b""
        while len(out) < disasm.MAX_INSN:
            linear = rip + len(out)
            phys = paged_physical(self._read_phys, cr3, linear)
            if phys is None:
                break
            n = min(disasm.MAX_INSN - len(out), PAGE - (linear & (PAGE - 1)))
            try:
                out += self._read_phys(phys, n)
            except (TraceError, ValueError, OSError, OverflowError):
                break
        return out or None


class CodeMap:
    """Bytes stored by a capture (``{code_key: bytes}``): a trace file's code map."""

    live = False
    paged = True  # keys may hold a CR3 (code_key); a plain RIP key is found too

    def __init__(self, code: Mapping[int, bytes]) -> None:
        self.code = code

    def read(self, rip: int, cr3: int = 0) -> bytes | None:
        return self.code.get(code_key(rip, cr3, True)) or self.code.get(rip) or None


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

    def _load(self, rip: int, cr3: int) -> Decoded | None:
        assert self.reader is not None
        self.reads += 1
        try:
            code = self.reader.read(rip, cr3) if cr3 else self.reader.read(rip)
        except (TraceError, ValueError, OSError):
            code = None
        return decode(code, rip) if code else None

    def lookup(self, rip: int, cr3: int = 0) -> Decoded | None:
        """The decoded instruction at ``rip`` (in address space ``cr3`` for a paged reader); None when its
        bytes are unknown (or no capstone)."""
        if self.reader is None:
            return None
        key = code_key(rip, cr3, self.reader.paged)
        if key in self._cache:
            return self._cache[key]
        if len(self._cache) >= self.limit:
            self.clear()
        got = self._cache[key] = self._load(rip, cr3)
        return got

    def text(self, rip: int, insn_len: int = 0, cr3: int = 0) -> str:
        """The instruction at ``rip`` as text; "" without a reader, :data:`UNKNOWN` for unknown bytes."""
        if self.reader is None:
            return ""
        got = self.lookup(rip, cr3)
        if got is None:
            return UNKNOWN
        key = code_key(rip, cr3, self.reader.paged)
        if insn_len and got.size and got.size != insn_len:
            if self.reader.live and key not in self._reread:
                self._reread.add(key)
                got = self._cache[key] = self._load(rip, cr3)
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
        paged = self.reader.paged
        if paged:  # distinct (cr3, rip) pairs; the kernel half's once whatever the CR3
            pairs = np.unique(np.stack([recs["rip"], recs["cr3"]], axis=1), axis=0).tolist()
        else:
            pairs = [(rip, 0) for rip in np.unique(recs["rip"]).tolist()]
        for rip, cr3 in pairs:
            key = code_key(rip, cr3, paged)
            if key in self._seen:
                continue
            if len(self._seen) >= self.limit:
                return
            self._seen.add(key)
            try:
                code = self.reader.read(rip, cr3) if paged else self.reader.read(rip)
            except (TraceError, ValueError, OSError):
                code = None
            if not code:
                continue
            insn = disasm.instruction(code, rip)
            self.code[key] = insn.raw if insn is not None else code
