#!/usr/bin/env python3
"""Build-time relocation table for the self-relocating hypervisor image (like Linux's
arch/x86/tools/relocs): reads the relocations `ld --emit-relocs` kept in the linked ELF and writes the
link addresses of every absolute pointer the image holds, so that boot code can slide the image.

    relocs.py IMAGE.elf OUT.bin

Table (little endian u32): count64, count32, then count64 + count32 offsets from __image_start of the
64-bit (R_X86_64_64) and 32-bit (R_X86_64_32) absolute fields. PC-relative relocations need nothing
(the whole image moves). R_X86_64_32S (sign-extended 32-bit: wrong above 2 GiB) and GOT relocations
(a table of absolute addresses the linker fills without a relocation) are refused: the C is compiled
-fpie with hidden visibility and the 64-bit assembly is RIP-relative.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

SHT_SYMTAB = 2
SHT_RELA = 4
SHF_ALLOC = 2
SHN_UNDEF = 0
SHN_ABS = 0xFFF1

R_X86_64_NONE = 0
R_X86_64_64 = 1
R_X86_64_32 = 10
R_X86_64_32S = 11
# PC-relative: position independent inside the image.
PC_RELATIVE = {2, 4, 24, 26}  # PC32, PLT32, PC64, GOTPC32 never expected but harmless
REFUSED = {
    R_X86_64_32S: "R_X86_64_32S",
    3: "R_X86_64_GOT32",
    9: "R_X86_64_GOTPCREL",
    41: "R_X86_64_GOTPCRELX",
    42: "R_X86_64_REX_GOTPCRELX",
}


class Section:
    def __init__(self, raw: bytes) -> None:
        (
            self.name_off,
            self.type,
            self.flags,
            self.addr,
            self.offset,
            self.size,
            self.link,
            self.info,
            _,
            _,
        ) = struct.unpack("<IIQQQQIIQQ", raw)
        self.name = ""


def sections(data: bytes) -> list[Section]:
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    secs = [Section(data[shoff + i * shentsize : shoff + i * shentsize + 64]) for i in range(shnum)]
    strtab = secs[shstrndx]
    for s in secs:
        end = data.index(b"\0", strtab.offset + s.name_off)
        s.name = data[strtab.offset + s.name_off : end].decode()
    return secs


def symbol(data: bytes, symtab: Section, strtab_sec: Section, index: int) -> tuple[str, int]:
    """(name, st_shndx) of symbol ``index``."""
    off = symtab.offset + index * 24
    name_off, _, _, shndx = struct.unpack_from("<IBBH", data, off)
    end = data.index(b"\0", strtab_sec.offset + name_off)
    return data[strtab_sec.offset + name_off : end].decode(errors="replace"), shndx


def image_start(data: bytes, secs: list[Section]) -> int:
    symtab = next(s for s in secs if s.type == SHT_SYMTAB)
    strtab = secs[symtab.link]
    for i in range(symtab.size // 24):
        name_off, _, _, _, value = struct.unpack_from("<IBBHQ", data, symtab.offset + i * 24)
        end = data.index(b"\0", strtab.offset + name_off)
        if data[strtab.offset + name_off : end] == b"__image_start":
            return int(value)
    raise SystemExit("relocs: no __image_start symbol")


def table(elf: Path) -> bytes:
    data = elf.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2:
        raise SystemExit(f"relocs: {elf} is not an ELF64 file")
    secs = sections(data)
    base = image_start(data, secs)
    abs64: set[int] = set()
    abs32: set[int] = set()
    errors: list[str] = []
    for rela in secs:
        if rela.type != SHT_RELA:
            continue
        target = secs[rela.info]
        if not target.flags & SHF_ALLOC:
            continue  # debug information: gdb applies the slide itself (symbol-file -o)
        symtab = secs[rela.link]
        for i in range(rela.size // 24):
            r_offset, r_info, _ = struct.unpack_from("<QQq", data, rela.offset + i * 24)
            rtype, sym = r_info & 0xFFFFFFFF, r_info >> 32
            if rtype == R_X86_64_NONE or rtype in PC_RELATIVE:
                continue
            name, shndx = symbol(data, symtab, secs[symtab.link], sym) if sym else ("", SHN_ABS)
            if rtype in REFUSED:
                errors.append(f"{REFUSED[rtype]} at {r_offset:#x} ({target.name}) against {name or '?'}")
                continue
            if rtype not in (R_X86_64_64, R_X86_64_32):
                errors.append(
                    f"relocation type {rtype} at {r_offset:#x} ({target.name}) against {name or '?'}"
                )
                continue
            if shndx in (SHN_ABS, SHN_UNDEF) and sym:
                continue  # an absolute value (or an undefined weak 0): the same wherever the image runs
            (abs64 if rtype == R_X86_64_64 else abs32).add(r_offset - base)
    if errors:
        raise SystemExit("relocs: the image cannot slide:\n  " + "\n  ".join(errors))
    out = [len(abs64), len(abs32), *sorted(abs64), *sorted(abs32)]
    return struct.pack(f"<{len(out)}I", *out)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: relocs.py IMAGE.elf OUT.bin", file=sys.stderr)
        return 2
    Path(argv[2]).write_bytes(table(Path(argv[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
