"""Stage-2 translation: EPT and NPT entries, walks, and whole-map summaries.

- EPT entries: Intel SDM Vol. 3C 29.3.2, Tables 29-1..29-6 (as cited by hv/vmx/ept.c): bits 2:0
  read/write/execute (an entry with all three clear is not present), leaves: memory type 5:3, ignore
  PAT 6; bit 7 marks a 1 GiB / 2 MiB leaf at levels 3 / 2; accessed 8, dirty 9 (leaves; with EPTP bit
  6), user-mode execute 10 (mode-based execute control), suppress #VE 63 (leaves), address 51:12.
  Access rights are the AND of every level (29.3.3). EPTP: 25.6.11 (memory type 2:0, walk length - 1
  in 5:3, A/D enable 6, supervisor shadow-stack enforcement 7, address 51:12).
- NPT entries: long-mode page-table entries (AMD APM Vol. 2 5.3, Figures 5-17..5-25) used for the
  nested walk (15.25): P 0, R/W 1, U/S 2, PWT 3, PCD 4, A 5, D 6, PS 7 (PDPE / PDE) or PAT 7 (PTE),
  G 8, PAT 12 in 2 MiB / 1 GiB leaves, NX 63, address 51:12. The memory type is the PAT entry
  selected by PAT*4 + PCD*2 + PWT (APM Vol. 2 7.8.2), with the power-on PAT (7.8.1) unless a PAT
  value is given.

The walker and summariser read memory through a callable (``read_qword(paddr) -> int``, or for speed
``read_table(paddr) -> sequence of 512 ints``), so they run the same over gdb, a core file or a dict.
The summariser visits each table once and each large leaf once: a 4 GiB map of 2 MiB pages is 4 + 2048
entries, not a million.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

Kind = Literal["ept", "npt"]
ReadQword = Callable[[int], int]
ReadTable = Callable[[int], Sequence[int]]

R, W, X = 1, 2, 4
RWX: Final = 7
ADDR_MASK: Final = 0x000F_FFFF_FFFF_F000  # bits 51:12
ENTRIES: Final = 512

#: Memory-type encodings (SDM Vol. 3A 11.3 / 11.12; APM Vol. 2 7.4), as EPT and PAT use them.
MEMTYPE_NAMES: Final[Mapping[int, str]] = {0: "UC", 1: "WC", 4: "WT", 5: "WP", 6: "WB", 7: "UC-"}
#: IA32_PAT after reset: PA0 WB, PA1 WT, PA2 UC-, PA3 UC, PA4..PA7 the same again.
POWER_ON_PAT: Final = 0x0007_0406_0007_0406


def memtype_name(t: int | None) -> str:
    if t is None:
        return "-"
    return MEMTYPE_NAMES.get(t, f"reserved({t})")


def parse_memtype(name: str) -> int:
    """'WB' -> 6 etc. (case-insensitive); ValueError if unknown."""
    for t, n in MEMTYPE_NAMES.items():
        if n.lower() == name.strip().lower():
            return t
    raise ValueError(f"unknown memory type {name!r} (one of {', '.join(MEMTYPE_NAMES.values())})")


def perms_str(p: int) -> str:
    return "".join(c if p & bit else "-" for c, bit in (("r", R), ("w", W), ("x", X)))


def parse_perms(text: str) -> int:
    """'rwx', 'r-x', 'rw', '---' -> a R/W/X mask; ValueError on anything else."""
    mask = 0
    for ch in text.strip().lower():
        if ch == "-":
            continue
        bit = {"r": R, "w": W, "x": X}.get(ch)
        if bit is None:
            raise ValueError(f"bad permissions {text!r}: use r, w, x and -")
        mask |= bit
    return mask


def pat_entry(pat: int, index: int) -> int:
    return pat >> (8 * (index & 7)) & 7


def describe_pat(pat: int) -> str:
    return " ".join(f"PA{i}={memtype_name(pat_entry(pat, i))}" for i in range(8))


def level_size(level: int) -> int:
    """Bytes mapped by one entry at this level (1 = 4 KiB, 2 = 2 MiB, 3 = 1 GiB, 4 = 512 GiB)."""
    return 1 << (12 + 9 * (level - 1))


def level_index(gpa: int, level: int) -> int:
    return gpa >> (12 + 9 * (level - 1)) & (ENTRIES - 1)


def size_label(size: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if size >= 1 << shift and size % (1 << shift) == 0:
            return f"{size >> shift} {unit}"
    return f"{size} B"


LEVEL_NAMES: Final[Mapping[int, str]] = {5: "PML5E", 4: "PML4E", 3: "PDPTE", 2: "PDE", 1: "PTE"}


@dataclass(frozen=True)
class Stage2Entry:
    """One EPT or NPT entry, decoded for its level."""

    raw: int
    level: int
    present: bool
    leaf: bool  # maps a page (a large-page leaf at levels 2 / 3)
    addr: int  # the page (aligned to the leaf size) or the next table
    perms: int  # R/W/X this entry allows (0 when not present)
    memtype: int | None  # leaves only
    ignore_pat: bool
    accessed: bool
    dirty: bool
    flags: tuple[str, ...]  # every named bit that is set, e.g. ("R", "W", "X", "IPAT", "A")

    @property
    def page_size(self) -> int:
        return level_size(self.level)

    def describe(self) -> str:
        kind = (
            "not present"
            if not self.present
            else ("leaf " + size_label(self.page_size))
            if self.leaf
            else "table"
        )
        text = f"{LEVEL_NAMES.get(self.level, f'L{self.level}')} {self.raw:#018x} {kind}"
        if self.present or self.raw:
            text += f" {perms_str(self.perms)} addr={self.addr:#x}"
        if self.leaf:
            text += f" {memtype_name(self.memtype)}"
        if self.flags:
            text += " [" + " ".join(self.flags) + "]"
        return text


_EPT_FLAG_BITS: Final = ((0, "R"), (1, "W"), (2, "X"), (8, "A"), (10, "UX"))
_EPT_LEAF_FLAG_BITS: Final = ((6, "IPAT"), (7, "PS"), (9, "D"), (63, "SVE"))


def _leaf_addr(entry: int, level: int) -> int:
    return entry & ADDR_MASK & ~(level_size(level) - 1)


def decode_ept(entry: int, level: int) -> Stage2Entry:
    """An EPT paging-structure entry at level 1..5 (SDM Vol. 3C 29.3.2)."""
    perms = entry & RWX
    leaf = level == 1 or (level in (2, 3) and bool(entry & 0x80))
    flags = [name for bit, name in _EPT_FLAG_BITS if entry >> bit & 1]
    if leaf:
        flags += [
            name for bit, name in _EPT_LEAF_FLAG_BITS if entry >> bit & 1 and not (bit == 7 and level == 1)
        ]
    return Stage2Entry(
        raw=entry,
        level=level,
        present=perms != 0,
        leaf=leaf,
        addr=_leaf_addr(entry, level) if leaf else entry & ADDR_MASK,
        perms=perms,
        memtype=entry >> 3 & 7 if leaf else None,
        ignore_pat=leaf and bool(entry >> 6 & 1),
        accessed=bool(entry >> 8 & 1),
        dirty=leaf and bool(entry >> 9 & 1),
        flags=tuple(flags),
    )


_NPT_FLAG_BITS: Final = ((0, "P"), (1, "RW"), (2, "US"), (3, "PWT"), (4, "PCD"), (5, "A"), (63, "NX"))


def decode_npt(entry: int, level: int, pat: int = POWER_ON_PAT) -> Stage2Entry:
    """A long-mode page-table entry used as a nested (NPT) entry (AMD APM Vol. 2 5.3, 15.25)."""
    present = bool(entry & 1)
    leaf = level == 1 or (level in (2, 3) and bool(entry & 0x80))
    flags = [name for bit, name in _NPT_FLAG_BITS if entry >> bit & 1]
    pat_bit = 0
    if leaf:
        pat_bit = entry >> (7 if level == 1 else 12) & 1
        flags += [
            name
            for on, name in (
                (entry >> 6 & 1, "D"),
                (level > 1, "PS"),
                (entry >> 8 & 1, "G"),
                (pat_bit, "PAT"),
            )
            if on
        ]
    # Nested walks are user accesses (APM Vol. 2 15.25.5): U/S clear at any level denies them.
    perms = (R | (W if entry & 2 else 0) | (0 if entry >> 63 else X)) if present and entry & 4 else 0
    index = pat_bit << 2 | (entry >> 4 & 1) << 1 | (entry >> 3 & 1)
    return Stage2Entry(
        raw=entry,
        level=level,
        present=present,
        leaf=leaf,
        addr=_leaf_addr(entry, level) if leaf else entry & ADDR_MASK,
        perms=perms,
        memtype=pat_entry(pat, index) if leaf else None,
        ignore_pat=False,
        accessed=bool(entry >> 5 & 1),
        dirty=leaf and bool(entry >> 6 & 1),
        flags=tuple(flags),
    )


def decode_entry(kind: Kind, entry: int, level: int, pat: int = POWER_ON_PAT) -> Stage2Entry:
    return decode_ept(entry, level) if kind == "ept" else decode_npt(entry, level, pat)


# ---- EPTP ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Eptp:
    """The VMCS EPT pointer (SDM Vol. 3C 25.6.11)."""

    memtype: int  # bits 2:0: 0 UC, 6 WB
    levels: int  # bits 5:3 + 1: 4 or 5
    ad_enabled: bool  # bit 6
    sss_enforced: bool  # bit 7: supervisor shadow-stack control
    root: int  # bits 51:12: the PML4 (or PML5) table

    def describe(self) -> str:
        text = f"root={self.root:#x} {memtype_name(self.memtype)} {self.levels}-level"
        return text + (" A/D" if self.ad_enabled else "") + (" SSS" if self.sss_enforced else "")


def decode_eptp(eptp: int) -> Eptp:
    return Eptp(
        memtype=eptp & 7,
        levels=(eptp >> 3 & 7) + 1,
        ad_enabled=bool(eptp >> 6 & 1),
        sss_enforced=bool(eptp >> 7 & 1),
        root=eptp & ADDR_MASK,
    )


# ---- walk ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WalkStep:
    level: int
    index: int
    entry_addr: int  # host-physical address of the entry
    entry: Stage2Entry


@dataclass(frozen=True)
class Walk:
    """What a walk of one guest-physical address found."""

    gpa: int
    steps: tuple[WalkStep, ...]  # root first
    hpa: int | None  # None: not mapped
    perms: int  # effective: the AND over the levels
    memtype: int | None
    page_size: int | None
    ignore_pat: bool

    @property
    def mapped(self) -> bool:
        return self.hpa is not None

    def describe(self) -> list[str]:
        lines = [
            f"  {LEVEL_NAMES.get(s.level, s.level)}[{s.index:3}] @ {s.entry_addr:#x}: {s.entry.describe()}"
            for s in self.steps
        ]
        if self.hpa is None:
            lines.append(f"GPA {self.gpa:#x}: not mapped")
        else:
            assert self.page_size is not None
            lines.append(
                f"GPA {self.gpa:#x} -> HPA {self.hpa:#x}  {perms_str(self.perms)} "
                f"{memtype_name(self.memtype)}{' (ignore PAT)' if self.ignore_pat else ''} "
                f"{size_label(self.page_size)} page"
            )
        return lines


def walk(
    root: int,
    gpa: int,
    read_qword: ReadQword,
    *,
    kind: Kind = "ept",
    levels: int = 4,
    pat: int = POWER_ON_PAT,
) -> Walk:
    """Walk gpa from the root table (EPTP / nCR3 address bits) down to its leaf."""
    steps: list[WalkStep] = []
    table = root & ADDR_MASK
    perms = RWX
    for level in range(levels, 0, -1):
        index = level_index(gpa, level)
        addr = table + 8 * index
        e = decode_entry(kind, read_qword(addr), level, pat)
        steps.append(WalkStep(level, index, addr, e))
        if not e.present:
            break
        perms &= e.perms
        if e.leaf:
            size = level_size(level)
            return Walk(
                gpa=gpa,
                steps=tuple(steps),
                hpa=e.addr | (gpa & (size - 1)),
                perms=perms,
                memtype=e.memtype,
                page_size=size,
                ignore_pat=e.ignore_pat,
            )
        table = e.addr
    return Walk(
        gpa=gpa, steps=tuple(steps), hpa=None, perms=0, memtype=None, page_size=None, ignore_pat=False
    )


# ---- summary ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Range:
    """A run of guest-physical space with one (permissions, memory type, page size)."""

    start: int
    end: int  # exclusive
    hpa: int  # host-physical address of start
    perms: int
    memtype: int | None
    page_size: int

    def describe(self) -> str:
        text = (
            f"{self.start:#014x}-{self.end - 1:#014x} {perms_str(self.perms)} "
            f"{memtype_name(self.memtype):3} {size_label(self.page_size)}"
        )
        return text if self.hpa == self.start else f"{text} -> {self.hpa:#x}"


def table_reader(read_qword: ReadQword) -> ReadTable:
    """A table reader built on a qword reader (512 calls a table; pass a real read_table if you can)."""
    return lambda addr: [read_qword(addr + 8 * i) for i in range(ENTRIES)]


def summarise(
    root: int,
    read_qword: ReadQword | None = None,
    *,
    read_table: ReadTable | None = None,
    kind: Kind = "ept",
    levels: int = 4,
    pat: int = POWER_ON_PAT,
    start: int = 0,
    end: int | None = None,
    types: Iterable[int] | None = None,
    perms: int | None = None,
) -> list[Range]:
    """Every mapping in [start, end) as merged ranges, in address order.

    Adjacent leaves merge when permissions, memory type, page size and host-physical continuity
    agree. A leaf that is not present but not zero either (e.g. access removed, address kept) shows
    with permissions ``---``; zero entries are holes. ``types`` keeps ranges of those memory types;
    ``perms`` keeps ranges with exactly those effective permissions.
    """
    if read_table is None:
        if read_qword is None:
            raise ValueError("summarise() needs read_qword or read_table")
        read_table = table_reader(read_qword)
    top = level_size(levels + 1)
    end = top if end is None else min(end, top)
    out: list[Range] = []

    def emit(gpa: int, size: int, hpa: int, p: int, memtype: int | None) -> None:
        lo, hi = max(gpa, start), min(gpa + size, end)
        if lo >= hi:
            return
        hpa += lo - gpa
        if out:
            last = out[-1]
            if (
                last.end == lo
                and last.perms == p
                and last.memtype == memtype
                and last.page_size == size
                and last.hpa + (last.end - last.start) == hpa
            ):
                out[-1] = Range(last.start, hi, last.hpa, p, memtype, size)
                return
        out.append(Range(lo, hi, hpa, p, memtype, size))

    def visit(table: int, level: int, base: int, parent_perms: int) -> None:
        # Depth first in address order (at most 5 levels deep); only entries inside [start, end).
        size = level_size(level)
        first = (start - base) // size if start > base else 0
        last = min(ENTRIES, -(-(end - base) // size))
        entries = read_table(table)
        for index in range(first, last):
            raw = entries[index]
            if raw == 0:
                continue
            e = decode_entry(kind, raw, level, pat)
            gpa = base + index * size
            if e.leaf:
                emit(gpa, size, e.addr, parent_perms & e.perms if e.present else 0, e.memtype)
            elif e.present:
                visit(e.addr, level - 1, gpa, parent_perms & e.perms)

    visit(root & ADDR_MASK, levels, 0, RWX)
    wanted_types = None if types is None else set(types)
    return [
        r
        for r in out
        if (wanted_types is None or r.memtype in wanted_types) and (perms is None or r.perms == perms)
    ]
