"""Code of a paged guest through the record's CR3 (hvtrace.trace.code.PagedCode) over 4-level page
tables built in a bytearray (SDM Vol. 3A 4.5: PML4E / PDPTE / PDE / PTE indexed by bits 47:39, 38:30,
29:21, 20:12; P is bit 0), and the capture's code keys: a kernel-half RIP once, a user RIP per CR3."""

from __future__ import annotations

import numpy as np

from hvtrace.abi import HvExitKind
from hvtrace.trace.code import CodeCache, CodeCollector, CodeMap, PagedCode, code_key
from hvtrace.trace.records import RECORD_DTYPE
from hvtrace.trace.sources import GdbMemorySource

P = 1
CPUID = b"\x0f\xa2"
WRMSR = b"\x0f\x30"
KERNEL = 0xFFFF_FFFF_8100_0000


class Ram:
    def __init__(self, size: int = 0x40000) -> None:
        self.mem = bytearray(size)
        self.next_table = 0x10000

    def put(self, addr: int, value: int) -> None:
        self.mem[addr : addr + 8] = value.to_bytes(8, "little")

    def table(self) -> int:
        self.next_table += 0x1000
        return self.next_table

    def map(self, cr3: int, linear: int, phys: int) -> None:
        """A 4 KiB page: walk from cr3, allocating the tables missing on the way."""
        table = cr3
        for shift in (39, 30, 21):
            slot = table + ((linear >> shift) & 511) * 8
            entry = int.from_bytes(self.mem[slot : slot + 8], "little")
            if not entry & P:
                entry = self.table() | P
                self.put(slot, entry)
            table = entry & ~0xFFF
        self.put(table + ((linear >> 12) & 511) * 8, phys | P)

    def read(self, addr: int, n: int) -> bytes:
        return bytes(self.mem[addr : addr + n])


def test_a_kernel_rip_is_read_through_cr3_also_across_a_page_boundary() -> None:
    ram = Ram()
    cr3 = 0x1000
    ram.map(cr3, KERNEL, 0x5000)
    ram.map(cr3, KERNEL + 0x1000, 0x8000)  # the next virtual page is elsewhere physically
    ram.mem[0x5123:0x5125] = CPUID
    ram.mem[0x5FFF] = WRMSR[0]
    ram.mem[0x8000] = WRMSR[1]
    code = PagedCode(GdbMemorySource(ram.read))
    got = code.read(KERNEL + 0x123, cr3)
    assert got is not None
    assert got.startswith(CPUID)
    assert len(got) == 15
    cache = CodeCache(code)
    assert cache.text(KERNEL + 0x123, 2, cr3) == "cpuid"
    assert cache.text(KERNEL + 0xFFF, 2, cr3) == "wrmsr"
    assert cache.text(KERNEL + 0x5000, 2, cr3) == "?"  # not mapped
    assert code.read(0x5123) == ram.read(0x5123, 15)  # CR3 0 (unknown): RIP read as physical


def test_the_collector_keys_user_code_by_cr3_and_kernel_code_once() -> None:
    ram = Ram()
    a, b = 0x1000, 0x2000
    for cr3, phys in ((a, 0x6000), (b, 0x7000)):
        ram.map(cr3, 0x40_0000, phys)  # the same user RIP, different code in each process
        ram.map(cr3, KERNEL, 0x5000)
    ram.mem[0x6000:0x6002] = CPUID
    ram.mem[0x7000:0x7002] = WRMSR
    ram.mem[0x5000:0x5002] = CPUID
    recs = np.zeros(4, dtype=RECORD_DTYPE)
    recs["kind"] = HvExitKind.CPUID
    recs["rip"] = [0x40_0000, 0x40_0000, KERNEL, KERNEL]
    recs["cr3"] = [a, b, a, b]
    collector = CodeCollector(PagedCode(GdbMemorySource(ram.read)))
    collector.add(recs)
    assert set(collector.code) == {code_key(0x40_0000, a, True), code_key(0x40_0000, b, True), KERNEL}
    assert code_key(KERNEL, a, True) == KERNEL
    assert code_key(0x40_0000, a, True) == a << 64 | 0x40_0000
    replay = CodeCache(CodeMap(collector.code))
    assert replay.text(0x40_0000, 2, a) == "cpuid"
    assert replay.text(0x40_0000, 2, b) == "wrmsr"
    assert replay.text(KERNEL, 2, 0x9000) == "cpuid"  # the kernel half: any address space
    assert replay.text(0x40_0000, 2, 0x9000) == "?"  # an address space the capture never read
