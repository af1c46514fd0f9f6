"""Wrap raw guest-RAM dumps as an ELF64 core file gdb can load (``core-file``), stdlib only.

Each (guest-physical start, file) becomes one PT_LOAD with p_vaddr == p_paddr == start, so gdb reads
physical memory at the addresses the hypervisor's identity-mapped symbols (hv_trace, ...) name. The
Bochs back end dumps RAM this way (hvtrace.launch.bochs, dump_memory=True: ``<path>.<start hex>``).
"""

from __future__ import annotations

import shutil
import struct
from collections.abc import Sequence
from pathlib import Path

EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
PHDR = struct.Struct("<IIQQQQQQ")
ET_CORE, EM_X86_64, PT_LOAD, PF_RWX = 4, 62, 1, 7
ALIGN = 0x1000


def write_core(segments: Sequence[tuple[int, Path]], out: Path) -> Path:
    """Write ``out``: an ELF64 ET_CORE with one PT_LOAD per (physical start, raw file)."""
    if not segments:
        raise ValueError("no memory segments to wrap")
    segs = sorted(segments)
    sizes = [p.stat().st_size for _, p in segs]
    header_end = EHDR.size + PHDR.size * len(segs)
    offset = -(-header_end // ALIGN) * ALIGN
    phdrs = []
    for (start, _), size in zip(segs, sizes, strict=True):
        phdrs.append(PHDR.pack(PT_LOAD, PF_RWX, offset, start, start, size, size, ALIGN))
        offset += -(-size // ALIGN) * ALIGN
    ident = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9)
    ehdr = EHDR.pack(
        ident, ET_CORE, EM_X86_64, 1, 0, EHDR.size, 0, 0, EHDR.size, PHDR.size, len(segs), 0, 0, 0
    )
    with out.open("wb") as f:
        f.write(ehdr)
        f.write(b"".join(phdrs))
        for (_, path), size in zip(segs, sizes, strict=True):
            f.seek(-(-f.tell() // ALIGN) * ALIGN)
            with path.open("rb") as src:
                shutil.copyfileobj(src, f, 1 << 20)
            assert size >= 0
        f.truncate(offset)
    return out


def dump_segments(prefix: Path) -> list[tuple[int, Path]]:
    """The raw dump files ``<prefix>.<start hex>`` next to ``prefix`` (Bochs writemem naming)."""
    out = []
    for p in prefix.parent.glob(f"{prefix.name}.*"):
        try:
            out.append((int(p.suffix[1:], 16), p))
        except ValueError:
            continue
    return sorted(out)
