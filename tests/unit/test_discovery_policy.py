"""Discovery scan policy against a guest that plants headers in its own RAM (issue 13 item 4).

A guest writes any byte of its RAM, so a header there can look perfect. The live image is at the top
of RAM (hv/core/relocate.c): among equally ranked scan hits the highest wins; headers whose ring
pointers are no rings of ours are rejected; a header found by the ELF symbol is never replaced.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

from hvtrace.abi import HV_ABI_VERSION, HV_DISCOVERY_MAGIC, HV_RECORD_SIZE, HvDiscovery, HvVendor
from hvtrace.trace.discovery import HEADER_SIZE, discover, scan
from hvtrace.trace.sources import SharedRamSource

RAM = 8 << 20
REAL = 0x7F0000  # where "the hypervisor" keeps its header, near the top of RAM
FAKE = 0x80000  # below 1 MiB, where a guest plants its own


def header(ring: int, cpus: int = 1, vendor: int = int(HvVendor.SVM)) -> bytes:
    h = HvDiscovery()
    h.magic = HV_DISCOVERY_MAGIC
    h.abi_version = HV_ABI_VERSION
    h.header_size = HEADER_SIZE
    h.vendor = vendor
    h.cpu_count = cpus
    h.record_size = HV_RECORD_SIZE
    h.ring_capacity = 64
    h.ring[0] = ring
    return bytes(h)


def ram_with(tmp_path: Path, blobs: dict[int, bytes]) -> SharedRamSource:
    data = bytearray(RAM)
    for at, blob in blobs.items():
        data[at : at + len(blob)] = blob
    path = tmp_path / "ram"
    path.write_bytes(bytes(data))
    return SharedRamSource(path, writable=False)


def test_a_planted_header_below_the_real_one_loses(tmp_path: Path) -> None:
    src = ram_with(tmp_path, {FAKE: header(ring=0x90000), REAL: header(ring=0x7E0000)})
    try:
        hits = scan(src, [(0, RAM)])
        assert [h.paddr for h in hits] == [REAL, FAKE]
        assert discover(src).paddr == REAL
    finally:
        src.close()


def test_only_the_given_hypervisor_range_is_scanned(tmp_path: Path) -> None:
    src = ram_with(tmp_path, {FAKE: header(ring=0x90000, cpus=2), REAL: header(ring=0x7E0000)})
    try:
        # the fake ranks higher (more CPUs registered... and rings), but lies outside hypervisor memory
        assert discover(src, scan_ranges=[(REAL & ~0xFFFF, RAM - (REAL & ~0xFFFF))]).paddr == REAL
    finally:
        src.close()


def test_headers_whose_rings_are_no_rings_are_rejected(tmp_path: Path) -> None:
    blobs = {
        0x10000: header(ring=RAM + 0x1000),  # beyond the memory
        0x20000: header(ring=0x90001),  # not record-aligned
        0x30000: header(ring=0x90000, cpus=0),  # a ring for a CPU that does not exist
    }
    src = ram_with(tmp_path, blobs)
    try:
        assert scan(src, [(0, RAM)]) == []
    finally:
        src.close()


def test_header_layout_matches() -> None:
    assert ctypes.sizeof(HvDiscovery) == HEADER_SIZE
