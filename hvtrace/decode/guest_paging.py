"""A guest linear address to guest-physical, by a walk of the guest's own page tables (stdlib only).

The host-side twin of hv/core/guest_mem.c, for tools that read guest memory physically (gdb in QEMU's
physical-memory mode, a RAM file, a core): the guest's CR0, CR3, CR4 and EFER come from a VMCS / VMCB
snapshot. Modes: no paging (the address itself; 32 bits outside long mode), 32-bit paging with 4 MiB
pages under CR4.PSE (SDM Vol. 3A 4.3), PAE (4.4), 4-level and 5-level paging (4.5). Only presence is
checked: this answers "which bytes", not "may the guest access them".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

Reader = Callable[[int, int], bytes]

CR0_PG = 1 << 31
CR4_PSE = 1 << 4
CR4_PAE = 1 << 5
CR4_LA57 = 1 << 12
EFER_LMA = 1 << 10
PRESENT = 1 << 0
PAGE_SIZE_BIT = 1 << 7
ADDR_MASK = 0x000F_FFFF_FFFF_F000


def _entry(read: Reader, addr: int, wide: bool) -> int:
    return int.from_bytes(read(addr, 8 if wide else 4), "little")


@dataclass(frozen=True)
class GuestPaging:
    """The control registers that select the guest's paging mode and its top-level table."""

    cr0: int
    cr3: int
    cr4: int
    efer: int

    def to_physical(self, read: Reader, linear: int) -> int | None:
        """The guest-physical address of ``linear``; None when a paging-structure entry is not present.
        ``read(addr, n)`` reads guest-physical memory (and may raise for addresses it cannot read)."""
        return linear_to_physical(read, self, linear)


def linear_to_physical(read: Reader, p: GuestPaging, linear: int) -> int | None:
    """See :meth:`GuestPaging.to_physical`."""
    cr0, cr3, cr4, efer = p.cr0, p.cr3, p.cr4, p.efer
    if not cr0 & CR0_PG:
        return linear if efer & EFER_LMA else linear & 0xFFFF_FFFF
    if efer & EFER_LMA:
        levels = 5 if cr4 & CR4_LA57 else 4
        table = cr3 & ADDR_MASK
        for level in range(levels, 0, -1):
            shift = 12 + 9 * (level - 1)
            e = _entry(read, table + ((linear >> shift) & 511) * 8, True)
            if not e & PRESENT:
                return None
            if level == 1 or (level in (2, 3) and e & PAGE_SIZE_BIT):
                size = 1 << shift
                return (e & ADDR_MASK & ~(size - 1)) | (linear & (size - 1))
            table = e & ADDR_MASK
        return None
    linear &= 0xFFFF_FFFF
    if cr4 & CR4_PAE:
        e = _entry(read, (cr3 & 0xFFFF_FFE0) + (linear >> 30) * 8, True)
        if not e & PRESENT:
            return None
        e = _entry(read, (e & ADDR_MASK) + ((linear >> 21) & 511) * 8, True)
        if not e & PRESENT:
            return None
        if e & PAGE_SIZE_BIT:
            return (e & ADDR_MASK & ~0x1F_FFFF) | (linear & 0x1F_FFFF)
        e = _entry(read, (e & ADDR_MASK) + ((linear >> 12) & 511) * 8, True)
        return (e & ADDR_MASK) | (linear & 0xFFF) if e & PRESENT else None
    e = _entry(read, (cr3 & 0xFFFF_F000) + (linear >> 22) * 4, False)
    if not e & PRESENT:
        return None
    if e & PAGE_SIZE_BIT and cr4 & CR4_PSE:
        return (e & 0xFFC0_0000) | (linear & 0x3F_FFFF)
    e = _entry(read, (e & 0xFFFF_F000) + ((linear >> 12) & 1023) * 4, False)
    return (e & 0xFFFF_F000) | (linear & 0xFFF) if e & PRESENT else None
