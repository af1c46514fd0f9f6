"""Find and validate the hypervisor's discovery header (abi.h struct hv_discovery, symbol ``hv_trace``).

Two ways, tried in order: the ELF symbol of the image (pyelftools; the image is linked at its physical
address and runs there plus the slide it moved by at boot, found by hvtrace.relocation), then a scan of
guest memory for HV_DISCOVERY_MAGIC on an 8-byte boundary. Copies of the
initialised header exist in RAM (the loader's copy of the image file), so scan hits are ranked: a
header with CPUs and rings registered wins.

Scan policy (a hostile guest can write every byte of its own RAM, headers included): the scan covers
hypervisor memory when the caller knows it (a live capture passes the image range the hypervisor
announced on its private channel, hvtrace.relocation.region_from_console), and among equally ranked
hits the HIGHEST address wins: the live image sits at the top of RAM (hv/core/relocate.c), so anything
a guest plants lies below it. A header found by the ELF symbol (plus the slide) is at the image's own
location and is never replaced by a scan hit. Every header's ring pointers must be aligned records
inside the source; a header whose rings point elsewhere is not one of ours.
"""

from __future__ import annotations

import ctypes
import functools
import itertools
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from hvtrace.abi import HV_DISCOVERY_MAGIC, HV_RECORD_SIZE, HvDiscovery, HvRing
from hvtrace.decode.record_meaning import HeaderError, capacity_problem, check_header
from hvtrace.decode.vendor import vendor_of
from hvtrace.exitcodes import ExitCode
from hvtrace.relocation import find_slide
from hvtrace.trace.errors import TraceError
from hvtrace.trace.sources import MemorySource

HEADER_SIZE = ctypes.sizeof(HvDiscovery)
RING_HEADER_SIZE = ctypes.sizeof(HvRing)
_RING_ALIGN = 4096
SYMBOL = "hv_trace"
_SCAN_CHUNK = 16 << 20


@dataclass(frozen=True)
class Discovery:
    """A validated discovery header and where it was found."""

    paddr: int
    header: HvDiscovery
    found_by: str  # "symbol" or "scan"

    @property
    def vendor(self) -> int:
        return int(self.header.vendor)

    @property
    def vendor_name(self) -> str:
        return vendor_of(self.vendor).name

    @property
    def cpu_count(self) -> int:
        return int(self.header.cpu_count)

    @property
    def rings(self) -> dict[int, int]:
        """CPU -> physical address of its ring (registered rings only)."""
        return {cpu: int(a) for cpu, a in enumerate(self.header.ring) if a}

    @property
    def build_id(self) -> str:
        return bytes(self.header.build_id).hex()


def elf_symbol(elf: Path, name: str = SYMBOL) -> int | None:
    """Physical address of ``name`` in the hypervisor image (vaddr == paddr: it is linked identity).
    Remembered per file version: reading the symbol table takes ~0.25 s, and a capture that waits for
    the hypervisor's rings looks the header up again and again (issue 18 item 4)."""
    try:
        st = Path(elf).stat()
    except OSError:
        return None
    return _elf_symbol(str(elf), st.st_mtime_ns, st.st_size, name)


@functools.lru_cache(maxsize=32)
def _elf_symbol(elf: str, _mtime_ns: int, _size: int, name: str) -> int | None:
    """elf_symbol of one version of the file (its modification time and size are the cache key)."""
    try:
        with Path(elf).open("rb") as fh:
            f = ELFFile(fh)
            for sec in f.iter_sections():
                if isinstance(sec, SymbolTableSection):
                    syms = sec.get_symbol_by_name(name)
                    if syms:
                        addr: int = syms[0]["st_value"]
                        for seg in f.iter_segments():
                            if (
                                seg["p_type"] == "PT_LOAD"
                                and seg["p_vaddr"] <= addr < seg["p_vaddr"] + seg["p_memsz"]
                            ):
                                return int(addr - seg["p_vaddr"] + seg["p_paddr"])
                        return addr
    except (OSError, ELFError):
        return None
    return None


def elf_build_id(elf: Path) -> str | None:
    """The GNU build-id of an ELF (hex), or None."""
    try:
        with Path(elf).open("rb") as fh:
            for sec in ELFFile(fh).iter_sections():
                if sec.name == ".note.gnu.build-id":
                    for note in sec.iter_notes():  # type: ignore[attr-defined]
                        if note["n_type"] == "NT_GNU_BUILD_ID":
                            return str(note["n_desc"])
    except (OSError, ELFError):
        return None
    return None


#: What each problem record_meaning.check_header() finds means for the exit status.
_HEADER_EXIT_CODES = {
    "truncated": ExitCode.BAD_DATA,
    "magic": ExitCode.NO_TRACE_HEADER,
    "abi": ExitCode.ABI_MISMATCH,
    "implausible": ExitCode.BAD_DATA,
}


def parse_header(data: bytes, paddr: int, found_by: str, what: str) -> Discovery:
    """Validate a header's bytes (record_meaning.check_header: magic, ABI version, header size, record
    size, CPU count) and its ring geometry; one-line errors."""
    try:
        h = check_header(data)
    except HeaderError as e:
        raise TraceError(
            _HEADER_EXIT_CODES[e.problem], f"{what}: discovery header at {paddr:#x}: {e.message}"
        ) from None
    check_ring_geometry(h, paddr, what)
    return Discovery(paddr, h, found_by)


def check_ring_geometry(h: HvDiscovery, paddr: int, what: str) -> None:
    """The registered rings must be where rings can be: a power-of-two capacity the reader accepts,
    addresses aligned like the hypervisor's pool allocations (hv/core/trace.c: page aligned) and rings
    that do not overlap each other or the header. Checked before any ring is read."""
    cap = int(h.ring_capacity)
    rings = sorted(int(a) for a in h.ring if a)
    if not rings:
        return
    # hv/core/trace.c registers a CPU's ring just before it stores the capacity: 0 is "not yet", and
    # then only the ring headers themselves are known to be there.
    if cap and capacity_problem(cap):
        raise TraceError(
            ExitCode.BAD_DATA, f"{what}: discovery header at {paddr:#x}: bad ring capacity {cap}"
        )
    size = RING_HEADER_SIZE + cap * HV_RECORD_SIZE
    spans = sorted([(a, a + size) for a in rings] + [(paddr, paddr + HEADER_SIZE)])
    for a in rings:
        if a % _RING_ALIGN or a + size > 1 << 52:  # 4 KiB pages; 52 bits: the architectural MAXPHYADDR
            raise TraceError(
                ExitCode.BAD_DATA, f"{what}: discovery header at {paddr:#x}: bad ring address {a:#x}"
            )
    for (_, end), (start, _) in itertools.pairwise(spans):
        if start < end:
            raise TraceError(
                ExitCode.BAD_DATA, f"{what}: discovery header at {paddr:#x}: rings overlap at {start:#x}"
            )


def _pointers_plausible(d: Discovery, limit: int | None) -> bool:
    """Rings are page aligned (pool allocations) and, like the snapshots and the break config, below
    ``limit`` (the end of the source's memory) and registered only for CPUs that exist."""
    ptrs = [int(a) for a in (*d.header.ring, *d.header.snapshot, d.header.break_config) if a]
    if any(cpu >= d.cpu_count for cpu in d.rings):
        return False
    if any(a % _RING_ALIGN for a in d.rings.values()):
        return False
    return limit is None or all(a < limit for a in ptrs)


def _rank(d: Discovery) -> tuple[int, int, int, int]:
    # Ties go to the highest address: the live image is at the top of RAM, a guest's plants lie below.
    return (int(bool(d.rings)), int(d.cpu_count > 0), int(d.vendor != 0), d.paddr)


def scan(source: MemorySource, segments: list[tuple[int, int]]) -> list[Discovery]:
    """Every valid header on an 8-byte boundary in the given (paddr, size) ranges, best first."""
    magic = np.uint64(HV_DISCOVERY_MAGIC)
    found: list[Discovery] = []
    for base, size in segments:
        pos = 0
        while pos < size:
            n = min(_SCAN_CHUNK, size - pos) & ~7
            if n <= 0:
                break
            words = np.frombuffer(source.read(base + pos, n), dtype="<u8")
            for idx in np.flatnonzero(words == magic):
                paddr = base + pos + int(idx) * 8
                if paddr + HEADER_SIZE > base + size:
                    continue
                try:
                    d = parse_header(source.read(paddr, HEADER_SIZE), paddr, "scan", source.name)
                except TraceError:
                    continue
                if _pointers_plausible(d, _memory_end(source)):
                    found.append(d)
            pos += n
    found.sort(key=_rank, reverse=True)
    return found


def _memory_end(source: MemorySource) -> int | None:
    segs = getattr(source, "segments", None)
    if not callable(segs):
        return None
    return max((s.paddr + s.size for s in segs()), default=None)


def runtime_symbol(source: MemorySource, link_addr: int) -> int:
    """``hv_trace``'s address in ``source``: its link address plus the image's slide (unchanged when no
    header is found at any candidate: the caller reports what it reads there)."""

    def probe(paddr: int, n: int) -> bytes | None:
        try:
            return source.read(paddr, n)
        except (TraceError, OSError, ValueError):
            return None

    slide = find_slide(probe, link_addr)
    return link_addr + (slide or 0)


def discover(
    source: MemorySource, *, elf: Path | None = None, scan_ranges: list[tuple[int, int]] | None = None
) -> Discovery:
    """The discovery header in ``source``: by the ELF symbol (plus the slide) when given and valid, else
    by magic scan of ``scan_ranges`` (default: all of the source's memory; pass hypervisor memory when
    known). A symbol hit is final: it is the image's own header, which no guest can write."""
    errors: list[TraceError] = []
    if elf is not None:
        addr = elf_symbol(elf)
        if addr is not None:
            addr = runtime_symbol(source, addr)
            try:
                return parse_header(source.read(addr, HEADER_SIZE), addr, "symbol", source.name)
            except TraceError as e:
                if e.code == ExitCode.ABI_MISMATCH:
                    raise
                errors.append(e)
    if scan_ranges is None:
        segs = getattr(source, "segments", None)
        scan_ranges = [(s.paddr, s.size) for s in segs()] if callable(segs) else []
    hits = scan(source, scan_ranges)
    if hits:
        return hits[0]
    # An ABI-mismatched header is a clearer error than "not found": look for the magic alone.
    for base, size in scan_ranges:
        data = source.read(base, size)
        at = data.find(struct.pack("<Q", HV_DISCOVERY_MAGIC))
        while at >= 0:
            if at % 8 == 0 and at + HEADER_SIZE <= len(data):
                parse_header(data[at : at + HEADER_SIZE], base + at, "scan", source.name)
            at = data.find(struct.pack("<Q", HV_DISCOVERY_MAGIC), at + 1)
    raise TraceError(
        ExitCode.NO_TRACE_HEADER,
        f"{source.name}: no hypervisor discovery header (hv_trace) found"
        + ("; is this guest memory of an hvtrace run?" if not errors else f" ({errors[0].message})"),
    )
