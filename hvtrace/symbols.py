"""Guest symbols: a kernel's symbol table (vmlinux ELF, System.map or a /proc/kallsyms dump) and RIP ->
``symbol+0xoff`` lookups by binary search, one at a time or vectorised over a record array.

A table holds the *link-time* addresses of its file; ``slide`` (the KASLR offset found for a trace, see
:mod:`hvtrace.kaslr`) is subtracted from a RIP before the lookup. A kallsyms dump holds run-time
addresses: its slide is 0 for the boot it was read from.

Without sizes (System.map and kallsyms carry none) a symbol reaches the next one; end markers
(``_etext``, ``_end``...) bound the text, so a RIP after the kernel's text is not blamed on its last
function. ELF symbols carry sizes: a RIP past a function's end is unknown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from hvtrace.exitcodes import ExitCode
from hvtrace.trace.errors import TraceError

#: Code symbol types of System.map / kallsyms (text, weak); other symbols only end the one before them.
TEXT_TYPES: Final = frozenset("tTwW")
#: Markers where the kernel's text (or image) ends: a RIP landing on them is outside every function.
END_MARKERS: Final = frozenset({"_etext", "_end", "__end_rodata", "_einittext", "__irqentry_text_end"})
ELF_MAGIC: Final = b"\x7fELF"


@dataclass(frozen=True)
class Location:
    name: str
    offset: int

    def __str__(self) -> str:
        return f"{self.name}+{self.offset:#x}"


class SymbolTable:
    """Sorted code symbols; ``lookup(rip)`` finds the one containing ``rip - slide``."""

    def __init__(
        self, entries: Iterable[tuple[int, str, int, bool]], *, source: str = "", kind: str = ""
    ) -> None:
        rows = [e for e in entries if e[0]]
        addrs = np.fromiter((r[0] for r in rows), dtype=np.uint64, count=len(rows))
        code = np.fromiter((r[3] for r in rows), dtype=bool, count=len(rows))
        # by address; at one address a code symbol after a data one (so it is the one found); stable
        order = np.lexsort((code, addrs)).tolist()
        self.addrs = addrs[order]
        self.names = [rows[i][1] for i in order]
        self.sizes = np.array([rows[i][2] for i in order], dtype=np.uint64)  # 0: to the next symbol
        self.code = code[order].tolist()  # False: data or an end marker, a boundary only
        usable = [c and n not in END_MARKERS for n, c in zip(self.names, self.code, strict=True)]
        self._usable = np.array(usable, dtype=bool)
        self.source = source
        self.kind = kind  # "elf", "system.map" or "kallsyms"
        self.slide = 0
        self._by_name: dict[str, int] = {}
        for a, n in zip(self.addrs.tolist(), self.names, strict=True):
            self._by_name.setdefault(n, a)

    def __len__(self) -> int:
        return len(self.names)

    def address(self, name: str) -> int | None:
        """The link-time address of ``name`` (the first one when several share it)."""
        return self._by_name.get(name)

    def with_slide(self, slide: int) -> SymbolTable:
        self.slide = slide
        return self

    def indices(self, rips: np.ndarray[Any, Any], slide: int) -> np.ndarray[Any, np.dtype[np.int64]]:
        """Vectorised :meth:`lookup` under ``slide``: the symbol index holding each RIP, -1 for none."""
        rips = np.asarray(rips, dtype=np.uint64)
        n = len(self.addrs)
        if not n:
            return np.full(len(rips), -1, dtype=np.int64)
        addr = rips - np.uint64(slide % (1 << 64))  # modulo 2**64, like the RIPs
        ok = rips >= np.uint64(slide) if slide >= 0 else rips < np.uint64((1 << 64) + slide)
        i = np.searchsorted(self.addrs, addr, side="right").astype(np.int64) - 1
        ok &= i >= 0
        ic = np.clip(i, 0, None)
        size = self.sizes[ic]
        within = np.where(size > 0, addr - self.addrs[ic] < size, (ic + 1 < n) | (self.kind == "kallsyms"))
        ok &= self._usable[ic] & within
        out: np.ndarray[Any, np.dtype[np.int64]] = np.where(ok, i, -1)
        return out

    def _index(self, addr: int) -> int | None:
        """The symbol holding link-time ``addr``, or None."""
        if not len(self.addrs) or addr < int(self.addrs[0]) or addr >= 1 << 64:
            return None
        i = int(np.searchsorted(self.addrs, np.uint64(addr), side="right")) - 1
        return i if self._holds(i, addr) else None

    def _holds(self, i: int, addr: int) -> bool:
        size = int(self.sizes[i])
        if not self.code[i] or self.names[i] in END_MARKERS:
            return False
        if size:
            return addr - int(self.addrs[i]) < size
        return i + 1 < len(self.names) or self.kind == "kallsyms"

    def lookup(self, rip: int) -> Location | None:
        addr = rip - self.slide
        i = self._index(addr)
        return None if i is None else Location(self.names[i], addr - int(self.addrs[i]))

    def text(self, rip: int) -> str:
        """``native_cpuid+0xf``, or "" when ``rip`` is in no known symbol."""
        loc = self.lookup(rip)
        return "" if loc is None else str(loc)

    def names_of(self, rips: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """``symbol+0xoff`` (or "") for each RIP of an array: one lookup per distinct RIP."""
        uniq, inv = np.unique(np.asarray(rips, dtype=np.uint64), return_inverse=True)
        texts = np.array([self.text(int(r)) for r in uniq.tolist()], dtype=object)
        return texts[inv] if len(uniq) else np.array([], dtype=object)


def _parse_text(data: str, source: str) -> SymbolTable:
    entries: list[tuple[int, str, int, bool]] = []
    zeros = 0
    modules = False
    for line in data.splitlines():
        f = line.split()  # ADDRESS TYPE NAME [[module]]: split, not a regex (150k lines in a System.map)
        if not 3 <= len(f) <= 4 or len(f[1]) != 1 or not f[1].isalpha() or not 8 <= len(f[0]) <= 16:
            continue
        try:
            addr = int(f[0], 16) if f[0].isalnum() else -1  # no sign, no "0x": plain hex digits
        except ValueError:
            continue
        if addr < 0:
            continue
        typ, name = f[1], f[2]
        modules |= len(f) == 4
        if addr == 0:
            zeros += 1
            continue
        entries.append((addr, name, 0, typ in TEXT_TYPES and name not in END_MARKERS))
    if not any(e[3] for e in entries):
        why = (
            "every address is 0 (read /proc/kallsyms as root, or with kernel.kptr_restrict=0)"
            if zeros
            else "no code symbols in System.map / kallsyms format ('ADDRESS TYPE NAME' lines)"
        )
        raise TraceError(ExitCode.BAD_DATA, f"symbols {source}: {why}")
    kind = "kallsyms" if modules or Path(source).name == "kallsyms" else "system.map"
    return SymbolTable(entries, source=source, kind=kind)


def _parse_elf(path: Path) -> SymbolTable:
    # pyelftools (109 M instructions to import, a third of numpy's) only for an ELF file: System.map
    # and kallsyms dumps never need it
    from elftools.common.exceptions import ELFError  # noqa: PLC0415
    from elftools.elf.elffile import ELFFile  # noqa: PLC0415
    from elftools.elf.sections import SymbolTableSection  # noqa: PLC0415

    entries: list[tuple[int, str, int, bool]] = []
    try:
        with path.open("rb") as fh:
            elf = ELFFile(fh)
            code = {i for i, s in enumerate(elf.iter_sections()) if s["sh_flags"] & 0x4}  # SHF_EXECINSTR
            for sec in elf.iter_sections():
                if not isinstance(sec, SymbolTableSection):
                    continue
                for sym in sec.iter_symbols():
                    typ = sym["st_info"]["type"]
                    shndx = sym["st_shndx"]
                    is_code = typ in ("STT_FUNC", "STT_NOTYPE") and isinstance(shndx, int) and shndx in code
                    if is_code or sym.name in END_MARKERS or typ == "STT_OBJECT":
                        is_code = is_code and sym.name not in END_MARKERS
                        entries.append((int(sym["st_value"]), sym.name, int(sym["st_size"]), is_code))
    except ELFError as e:
        raise TraceError(ExitCode.BAD_DATA, f"symbols {path}: not a readable ELF file ({e})") from None
    if not any(e[3] for e in entries):
        why = "the ELF file has no function symbols (stripped?)"
        raise TraceError(ExitCode.BAD_DATA, f"symbols {path}: {why}")
    return SymbolTable(entries, source=str(path), kind="elf")


def load(path: Path) -> SymbolTable:
    """A vmlinux (ELF symtab), System.map or kallsyms dump, told apart by content."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            elf = fh.read(len(ELF_MAGIC)) == ELF_MAGIC
        text = "" if elf else path.read_text(errors="replace")
    except OSError as e:
        why = "does not exist" if isinstance(e, FileNotFoundError) else f"cannot be read: {e.strerror}"
        raise TraceError(ExitCode.NO_INPUT, f"symbols file {path} {why}") from None
    return _parse_elf(path) if elf else _parse_text(text, str(path))


def load_symbols(path: Path | None) -> SymbolTable | None:
    return None if path is None else load(path)


def symbolizer(table: SymbolTable) -> Callable[[np.ndarray[Any, Any]], list[str | None]]:
    """Export's and query's hook: one ``name+0xoff`` per record's RIP, None where no symbol holds it."""
    return lambda recs: [name or None for name in table.names_of(recs["rip"]).tolist()]
