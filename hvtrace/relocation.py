"""Where the hypervisor runs: the one place host tools compute its slide.

The image is linked at 1 MiB (boot/linker.ld), where multiboot loaders put it, and moves itself to the
top of RAM below 4 GiB at boot (hv/core/relocate.c), keeping physical == virtual. Every runtime address
is the link address plus the *slide*, a multiple of :data:`SLIDE_ALIGN` (hv/include/hv/relocate.h
HV_SLIDE_ALIGN). The hypervisor prints it (:data:`CONSOLE_RE`); from memory alone (a gdbstub, a core, a
RAM file) it is found by reading the discovery header ``hv_trace`` at each candidate link + k * 2 MiB:
the loader's copy at the link address is cleared once the image has moved, and of the remaining hits
the highest wins (the live image is at the top of RAM; a boot loader's stray file copies are lower).
gdb then loads the ELF with ``symbol-file -o SLIDE`` (gdbext/target.py).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Iterable

from hvtrace.abi import HV_ABI_VERSION, HV_DISCOVERY_MAGIC

SLIDE_ALIGN = 0x200000
#: The boot identity map (and so the relocated image) lies below 4 GiB.
LIMIT = 1 << 32
CONSOLE_RE = re.compile(
    r"hvtrace: image relocated to \[(0x[0-9a-f]+)-(0x[0-9a-f]+)\), slide (0x[0-9a-f]+), "
    r"hypervisor region ends at (0x[0-9a-f]+)"
)
#: magic (u64), abi_version (u32), header_size (u32): enough to tell a header from stray bytes.
_PREFIX = struct.Struct("<QII")

#: Reads ``n`` bytes at a physical address; None (or short) where there is no memory.
Reader = Callable[[int, int], bytes | None]


def slide_from_console(lines: Iterable[str]) -> int | None:
    """The slide the hypervisor printed at boot (None when the lines do not say)."""
    for line in lines:
        m = CONSOLE_RE.search(line)
        if m:
            return int(m.group(3), 16)
    return None


def region_from_console(lines: Iterable[str]) -> tuple[int, int] | None:
    """(image start, end of the hypervisor's region at the top of RAM) from the boot line."""
    for line in lines:
        m = CONSOLE_RE.search(line)
        if m:
            return int(m.group(1), 16), int(m.group(4), 16)
    return None


def candidates(link_addr: int, limit: int = LIMIT) -> range:
    """Every possible slide for a symbol linked at ``link_addr``, highest first."""
    top = (limit - link_addr - _PREFIX.size) // SLIDE_ALIGN * SLIDE_ALIGN
    return range(max(top, 0), -1, -SLIDE_ALIGN)


def is_header(data: bytes | None, header_size: int | None = None) -> bool:
    """Does ``data`` start like a discovery header of this ABI?"""
    if data is None or len(data) < _PREFIX.size:
        return False
    magic, abi, size = _PREFIX.unpack_from(data)
    return (
        magic == HV_DISCOVERY_MAGIC and abi == HV_ABI_VERSION and (header_size is None or size == header_size)
    )


def find_slide(read: Reader, link_addr: int, limit: int = LIMIT) -> int | None:
    """The slide of the running image, from ``hv_trace``'s link address and reads of memory below
    ``limit`` (e.g. the RAM size): the highest candidate holding a header, None when none does."""
    for slide in candidates(link_addr, limit):
        if is_header(read(link_addr + slide, _PREFIX.size)):
            return slide
    return None
