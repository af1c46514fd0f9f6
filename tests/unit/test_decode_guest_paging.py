"""The guest page walk (hvtrace.decode.guest_paging) over page tables built in a dict of bytes.

Entry formats: SDM Vol. 3A 4.3 (32-bit paging: 4-byte entries, PS in a PDE maps 4 MiB with CR4.PSE),
4.4 (PAE: 4 PDPTEs at CR3[31:5], 8-byte PDEs/PTEs, PS maps 2 MiB), 4.5 (4-level: PML4E/PDPTE/PDE/PTE
indexed by bits 47:39, 38:30, 29:21, 20:12; PS in a PDPTE maps 1 GiB, in a PDE 2 MiB). P is bit 0,
PS bit 7; addresses in bits 51:12.
"""

from __future__ import annotations

import pytest

from hvtrace.decode.guest_paging import GuestPaging

P, RW, PS = 1, 2, 0x80
CR0_PE_PG = 0x8000_0001
CR4_PSE, CR4_PAE = 1 << 4, 1 << 5
EFER_LME_LMA = (1 << 8) | (1 << 10)


class Memory:
    def __init__(self) -> None:
        self.words: dict[int, bytes] = {}

    def put(self, addr: int, value: int, width: int = 8) -> None:
        self.words[addr] = value.to_bytes(width, "little")

    def read(self, addr: int, n: int) -> bytes:
        return self.words.get(addr, bytes(n))[:n]


def test_without_paging_linear_is_physical_truncated_outside_long_mode() -> None:
    mem = Memory()
    assert GuestPaging(0x11, 0, 0, 0).to_physical(mem.read, 0x1_2345_6789) == 0x2345_6789
    assert GuestPaging(0x11, 0, 0, EFER_LME_LMA).to_physical(mem.read, 0x1_2345_6789) == 0x1_2345_6789


def test_four_level_4k_2m_and_1g_pages() -> None:
    mem = Memory()
    cr3 = 0x1000
    va = 0xFFFF_FFFF_8100_0123  # PML4 511, PDPT 510, PD 8, PT 0
    mem.put(cr3 + 511 * 8, 0x2000 | P | RW)
    mem.put(0x2000 + 510 * 8, 0x3000 | P | RW)
    mem.put(0x3000 + 8 * 8, 0x4000 | P | RW)
    mem.put(0x4000 + 0 * 8, 0x0123_4000 | P)
    paging = GuestPaging(CR0_PE_PG, cr3, CR4_PAE, EFER_LME_LMA)
    assert paging.to_physical(mem.read, va) == 0x0123_4123
    # a 2 MiB page: PS in the PDE
    mem.put(0x3000 + 8 * 8, 0x0240_0000 | P | PS)
    assert paging.to_physical(mem.read, va) == 0x0240_0123
    # a 1 GiB page: PS in the PDPTE
    mem.put(0x2000 + 510 * 8, 0x4000_0000 | P | PS)
    assert paging.to_physical(mem.read, va) == 0x4000_0000 + (0x0100_0123)
    # not present anywhere: None
    assert paging.to_physical(mem.read, 0x0000_7FFF_0000_0000) is None


def test_pae_and_32_bit_paging() -> None:
    mem = Memory()
    # PAE: PDPTE 0 at CR3, PDE 1 (2 MiB page) for 0x0030_0456
    mem.put(0x5000, 0x6000 | P)
    mem.put(0x6000 + 1 * 8, 0x0080_0000 | P | PS)
    pae = GuestPaging(CR0_PE_PG, 0x5000, CR4_PAE, 0)
    assert pae.to_physical(mem.read, 0x0030_0456) == 0x0090_0456
    # 32-bit: PDE 1 -> PT, PTE 0x10
    mem.put(0x7000 + 1 * 4, 0x8000 | P, 4)
    mem.put(0x8000 + 0x10 * 4, 0x0012_3000 | P, 4)
    flat = GuestPaging(CR0_PE_PG, 0x7000, 0, 0)
    assert flat.to_physical(mem.read, 0x0041_0ABC) == 0x0012_3ABC
    # a 4 MiB page needs CR4.PSE; without it PS is ignored (the entry points to a page table)
    mem.put(0x7000 + 2 * 4, 0x0C00_0000 | P | PS, 4)
    assert GuestPaging(CR0_PE_PG, 0x7000, CR4_PSE, 0).to_physical(mem.read, 0x0081_2345) == 0x0C01_2345


@pytest.mark.parametrize("la57", [False, True])
def test_five_level_paging_uses_one_more_level(la57: bool) -> None:
    mem = Memory()
    va = 0x0000_0000_0000_1000
    tables = [0x1000, 0x2000, 0x3000, 0x4000, 0x5000]
    levels = 5 if la57 else 4
    for i in range(levels - 1):
        mem.put(tables[i], tables[i + 1] | P)
    mem.put(tables[levels - 1] + 1 * 8, 0x00AB_C000 | P)
    cr4 = CR4_PAE | ((1 << 12) if la57 else 0)
    assert GuestPaging(CR0_PE_PG, tables[0], cr4, EFER_LME_LMA).to_physical(mem.read, va) == 0x00AB_C000
