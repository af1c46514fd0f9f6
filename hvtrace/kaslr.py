"""The KASLR slide of a traced Linux kernel, found from what the trace already holds.

Tried in order, the first that gives a plausible slide wins (``Slide.how`` says which):

1. the guest's WRMSR of MSR_LSTAR (the 64-bit SYSCALL entry, SDM Vol. 3A 5.8.8 / APM Vol. 2 6.1.1):
   Linux writes ``entry_SYSCALL_64`` there; slide = value - its link-time address;
2. its WRMSR of IA32_SYSENTER_EIP (``entry_SYSENTER_compat``), the same way;
3. exit RIPs in known functions: a CPUID exit happens inside a function named ``*cpuid*``, an RDMSR /
   WRMSR exit inside one named ``*msr*`` (with paravirt, Linux's native_cpuid / native_read_msr...).
   Each (RIP, such function) pair proposes a slide (x86-64 KASLR moves the kernel by a multiple of
   2 MiB, CONFIG_PHYSICAL_ALIGN, so ``(rip - address)`` rounded down to 2 MiB); the slide that puts the
   most distinct RIPs into matching functions wins, if it puts at least two there.

A hypervisor that does not intercept the MSR (AMD's MSR permission map leaves LSTAR to the guest) leaves
no write in the trace: then the third way is the one that works.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from hvtrace.abi import HvExitKind
from hvtrace.symbols import SymbolTable
from hvtrace.trace.records import Records, empty

MSR_LSTAR: Final = 0xC000_0082
MSR_SYSENTER_EIP: Final = 0x176
#: Linux's KASLR granularity on x86-64 (CONFIG_PHYSICAL_ALIGN).
KASLR_ALIGN: Final = 0x20_0000
#: x86-64 KASLR moves the kernel within 1 GiB (KERNEL_IMAGE_SIZE).
KASLR_MAX: Final = 1 << 30
#: Kernel half of a canonical 48-bit address space.
KERNEL_HALF: Final = 0xFFFF_8000_0000_0000
MSR_METHODS: Final = ((MSR_LSTAR, "MSR_LSTAR", "entry_SYSCALL_64"),
                      (MSR_SYSENTER_EIP, "IA32_SYSENTER_EIP", "entry_SYSENTER_compat"))  # fmt: skip
#: Evidence records kept at most (distinct kernel RIPs of CPUID / MSR exits: a few hundred in a boot).
KEEP: Final = 1 << 14
#: Slides scored at most (the most proposed ones).
CANDIDATES: Final = 64
#: Exit kind -> the word a function holding such an exit has in its name.
KIND_WORDS: Final = {HvExitKind.CPUID: "cpuid", HvExitKind.MSR_READ: "msr", HvExitKind.MSR_WRITE: "msr"}


@dataclass(frozen=True)
class Slide:
    value: int
    how: str  # "MSR_LSTAR write = entry_SYSCALL_64"

    def line(self) -> str:
        return f"symbols: KASLR slide {self.value:#x} (from {self.how})"


NO_SLIDE_LINE: Final = "symbols: no KASLR slide found: symbols used as linked"


def _plausible(slide: int) -> bool:
    return slide % KASLR_ALIGN == 0 and -KASLR_MAX < slide < KASLR_MAX


def _from_msr_writes(table: SymbolTable, recs: Records) -> Slide | None:
    writes = recs[recs["kind"] == HvExitKind.MSR_WRITE]
    for msr, msr_name, symbol in MSR_METHODS:
        addr = table.address(symbol)
        values = writes["arg1"][writes["arg0"] == msr]
        if addr is None or not len(values):
            continue
        slide = int(values[-1]) - addr  # the last write is the one the kernel kept
        if _plausible(slide):
            return Slide(slide, f"{msr_name} write = {symbol}")
    return None


def _kernel_rips(recs: Records) -> dict[str, np.ndarray[Any, Any]]:
    """Distinct kernel-half exit RIPs per function-name word (cpuid, msr)."""
    out: dict[str, list[np.ndarray[Any, Any]]] = {}
    for kind, word in KIND_WORDS.items():
        rips = recs["rip"][(recs["kind"] == kind) & (recs["rip"] >= np.uint64(KERNEL_HALF))]
        out.setdefault(word, []).append(rips)
    merged = {w: np.unique(np.concatenate(parts)) for w, parts in out.items()}
    return {w: r for w, r in merged.items() if len(r)}


def _candidates(table: SymbolTable, rips: dict[str, np.ndarray[Any, Any]]) -> list[int]:
    """Slides proposed by (RIP, matching function) pairs, the most proposed first (the true slide is
    proposed by every RIP inside a matching function), at most :data:`CANDIDATES`, and 0."""
    votes: Counter[int] = Counter()
    for word, rs in rips.items():
        mask = np.array([word in n.lower() for n in table.names], dtype=bool)
        # as int64 (two's complement): differences of kernel addresses are exact
        addrs = table.addrs[mask].view(np.int64)
        for rip in rs.view(np.int64).tolist():
            slides = (rip - addrs) // KASLR_ALIGN * KASLR_ALIGN
            votes.update(slides[np.abs(slides) < KASLR_MAX].tolist())
    return [0] + [s for s, _n in votes.most_common(CANDIDATES) if s != 0]


def _from_exit_rips(table: SymbolTable, recs: Records) -> Slide | None:
    rips = _kernel_rips(recs)
    matches = {w: np.array([w in n.lower() for n in table.names] + [False]) for w in rips}  # [-1]: none
    best: tuple[int, int, list[str]] | None = None
    for slide in _candidates(table, rips):
        hits = 0
        found: list[str] = []
        for word, rs in rips.items():
            idx = table.indices(rs, slide)
            good = idx[matches[word][idx]]
            hits += len(good)
            found += [table.names[i] for i in np.unique(good).tolist()]
        if best is None or hits > best[0]:
            best = (hits, slide, found)
    if best is None or best[0] < 2:
        return None
    hits, slide, names = best
    names = list(dict.fromkeys(names))
    shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
    return Slide(slide, f"{hits} CPUID/MSR exit RIPs in {shown}")


class SlideEvidence:
    """The records that can tell the slide, collected from a stream of batches in bounded memory: one
    per distinct (kind, RIP) of the CPUID / MSR exits at kernel RIPs, and per distinct value written to
    MSR_LSTAR / IA32_SYSENTER_EIP; at most :data:`KEEP`."""

    def __init__(self) -> None:
        self._kept: dict[tuple[int, ...], Records] = {}

    def add(self, recs: Records) -> bool:
        """Take a batch; True when it brought evidence not seen before."""
        if not len(recs) or len(self._kept) >= KEEP:
            return False
        kinds = np.array(list(KIND_WORDS), dtype=recs["kind"].dtype)
        at_kernel = np.isin(recs["kind"], kinds) & (recs["rip"] >= np.uint64(KERNEL_HALF))
        entry = (recs["kind"] == HvExitKind.MSR_WRITE) & np.isin(
            recs["arg0"], [m for m, _n, _s in MSR_METHODS]
        )
        sel = recs[at_kernel | entry]
        if not len(sel):
            return False
        value = np.where(entry[at_kernel | entry], sel["arg1"], 0)
        rows = np.stack([sel["kind"].astype(np.uint64), sel["rip"], sel["arg0"] * (value > 0), value], axis=1)
        uniq, first = np.unique(rows, axis=0, return_index=True)
        new = False
        for row, i in zip(uniq.tolist(), first.tolist(), strict=True):
            if tuple(row) not in self._kept and len(self._kept) < KEEP:
                self._kept[tuple(row)] = sel[i : i + 1]
                new = True
        return new

    def records(self) -> Records:
        return np.concatenate(list(self._kept.values())) if self._kept else empty()


def find_slide(table: SymbolTable, recs: Records) -> Slide | None:
    """The slide of ``table`` for the kernel that ran in ``recs``, or None (use it as linked)."""
    return _from_msr_writes(table, recs) or _from_exit_rips(table, recs)


def apply_slide(table: SymbolTable, recs: Records) -> str:
    """Find and set ``table.slide``; the one line that says what was found."""
    slide = find_slide(table, recs)
    table.slide = slide.value if slide is not None else 0
    return slide.line() if slide is not None else NO_SLIDE_LINE
