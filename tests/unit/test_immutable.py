"""hvtrace.trace.immutable on a RAM image built here: the fingerprint covers exactly the listed ranges,
a single flipped byte in any of them or a changed table is a difference (issue 13: the check can fail)."""

from __future__ import annotations

import ctypes
from pathlib import Path

import pytest

from hvtrace.abi import HV_IMMUTABLE_MAX, HvDiscovery, HvRange
from hvtrace.exitcodes import ExitCode
from hvtrace.trace.errors import TraceError
from hvtrace.trace.immutable import Fingerprint, differences, fingerprint
from hvtrace.trace.sources import DumpSource

RAM = 0x10000
TABLE = 0x8000
RANGES = [(0x1000, 0x800), (0x2000, 0x20), (0x4000, 0x1000)]


def ram_image(ranges: list[tuple[int, int]] = RANGES) -> bytearray:
    ram = bytearray((i * 7 + 3) & 0xFF for i in range(RAM))
    for i, (base, length) in enumerate(ranges):
        ctypes.memmove(
            (ctypes.c_char * ctypes.sizeof(HvRange)).from_buffer(ram, TABLE + i * ctypes.sizeof(HvRange)),
            bytes(HvRange(base, length)),
            ctypes.sizeof(HvRange),
        )
    return ram


def header(count: int = len(RANGES), table: int = TABLE) -> HvDiscovery:
    h = HvDiscovery()
    h.immutable = table
    h.immutable_count = count
    return h


def fp_of(ram: bytearray, tmp_path: Path, name: str, h: HvDiscovery | None = None) -> Fingerprint:
    path = tmp_path / name
    path.write_bytes(bytes(ram))
    with DumpSource.raw([(0, path)]) as src:
        return fingerprint(src, h or header())


def test_same_memory_same_fingerprint(tmp_path: Path) -> None:
    before = fp_of(ram_image(), tmp_path, "a")
    after = fp_of(ram_image(), tmp_path, "b")
    assert differences(before, after) == []
    assert before.ranges == tuple(RANGES)
    assert before.total_bytes == sum(n for _, n in RANGES)


@pytest.mark.parametrize("at", [0x1000, 0x17FF, 0x2010, 0x4FFF])
def test_a_flipped_byte_in_a_range_is_a_difference(tmp_path: Path, at: int) -> None:
    ram = ram_image()
    before = fp_of(ram, tmp_path, "a")
    ram[at] ^= 0x01
    diff = differences(before, fp_of(ram, tmp_path, "b"))
    index = next(i for i, (b, n) in enumerate(RANGES) if b <= at < b + n)
    assert diff == [f"[{RANGES[index][0]:#x}-{sum(RANGES[index]):#x}) changed (range {index})"]


def test_bytes_outside_the_ranges_may_change(tmp_path: Path) -> None:
    ram = ram_image()
    before = fp_of(ram, tmp_path, "a")
    for at in (0x0FFF, 0x1800, 0x2020, 0x3FFF, 0x5000):
        ram[at] ^= 0xFF
    assert differences(before, fp_of(ram, tmp_path, "b")) == []


def test_a_changed_table_is_a_difference(tmp_path: Path) -> None:
    before = fp_of(ram_image(), tmp_path, "a")
    moved = [RANGES[0], (0x2000, 0x10), RANGES[2]]  # a range shrunk
    diff = differences(before, fp_of(ram_image(moved), tmp_path, "b"))
    assert diff == ["the immutable-range table changed (3 ranges before, 3 after)"]
    fewer = differences(before, fp_of(ram_image(), tmp_path, "c", header(count=2)))
    assert fewer == ["the immutable-range table changed (3 ranges before, 2 after)"]


@pytest.mark.parametrize(("count", "table"), [(0, TABLE), (HV_IMMUTABLE_MAX + 1, TABLE), (3, 0)])
def test_no_usable_table_is_a_clear_error(tmp_path: Path, count: int, table: int) -> None:
    with pytest.raises(TraceError) as e:
        fp_of(ram_image(), tmp_path, "a", header(count, table))
    assert e.value.code == ExitCode.BAD_DATA
    assert "immutable-range table" in e.value.message
