"""The image's slide (hvtrace.relocation, hv/core/relocate.c) and its build-time relocation table
(hv/tools/relocs.py)."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

from hvtrace import paths
from hvtrace.abi import HV_ABI_VERSION, HV_DISCOVERY_MAGIC
from hvtrace.relocation import (
    SLIDE_ALIGN,
    Reader,
    candidates,
    find_slide,
    is_header,
    region_from_console,
    slide_from_console,
)
from hvtrace.trace.discovery import elf_symbol

HEADER = struct.pack("<QII", HV_DISCOVERY_MAGIC, HV_ABI_VERSION, 600)
BOOT_LINE = (
    "hvtrace: image relocated to [0xff00000-0xff30000), slide 0xfe00000, hypervisor region ends at 0xffdf000"
)


def memory(contents: dict[int, bytes], size: int) -> Reader:
    """A reader over ``size`` bytes of zeroed RAM holding ``contents``; None beyond it."""

    def read(addr: int, n: int) -> bytes | None:
        if addr + n > size:
            return None
        for at, data in contents.items():
            if at <= addr < at + len(data):
                return data[addr - at : addr - at + n]
        return bytes(n)

    return read


def test_the_console_line_gives_slide_and_region() -> None:
    lines = ["hvtrace hypervisor (ABI 1) starting on the BSP", BOOT_LINE]
    assert slide_from_console(lines) == 0xFE00000
    assert region_from_console(lines) == (0xFF00000, 0xFFDF000)
    assert slide_from_console(["no such line"]) is None


def test_candidates_are_2mib_steps_below_4gib_highest_first() -> None:
    c = candidates(0x113AC0)
    assert c[0] % SLIDE_ALIGN == 0
    assert 0x113AC0 + c[0] + 16 <= 1 << 32 < 0x113AC0 + c[0] + SLIDE_ALIGN + 16
    assert c[-1] == 0
    assert len(c) == 2048  # 4 GiB / 2 MiB


def test_find_slide_takes_the_highest_header() -> None:
    link = 0x113AC0
    ram = 256 << 20
    # the live header at the top of RAM, a stale copy lower down (a loader's copy of the file)
    read = memory({link + 0xFE00000: HEADER, link + 0x400000: HEADER}, ram)
    assert find_slide(read, link) == 0xFE00000
    assert find_slide(memory({}, ram), link) is None
    # a wrong ABI version is no header
    other = struct.pack("<QII", HV_DISCOVERY_MAGIC, HV_ABI_VERSION + 1, 600)
    assert find_slide(memory({link + 0x200000: other}, ram), link) is None
    assert not is_header(None)
    assert is_header(HEADER, 600)
    assert not is_header(HEADER, 601)


def test_the_image_carries_a_table_of_its_absolute_pointers() -> None:
    """The built image's table (after .data, symbol __hvrelocs_start) lists every 64-bit absolute field:
    relocs.py finds the same table in the ELF it was linked into; an R_X86_64_32S would be refused."""
    elf = paths.image_path()
    r = subprocess.run(["make", "-s", "-C", str(paths.hv_dir())], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    out = elf.with_name("relocs.unit-test.bin")
    tool = paths.hv_dir() / "tools" / "relocs.py"
    try:
        r = subprocess.run(
            [sys.executable, str(tool), str(elf), str(out)], capture_output=True, text=True, check=False
        )
        assert r.returncode == 0, r.stderr
        table = out.read_bytes()
    finally:
        out.unlink(missing_ok=True)
    n64, n32 = struct.unpack_from("<II", table)
    assert n64 > 32  # the ISR table alone has 32 (hv/core/isr.S), ops tables more
    assert len(table) == 8 + 4 * (n64 + n32)
    start = elf_symbol(elf, "__hvrelocs_start")
    image = elf_symbol(elf, "__image_start")
    assert start is not None
    assert image == 0x100000
    data = Path(elf).read_bytes()
    # the same bytes sit in the image's .hvrelocs: the file offset of a paddr in its one PT_LOAD
    phoff = struct.unpack_from("<Q", data, 32)[0]
    p_type, _, p_offset, _, p_paddr = struct.unpack_from("<IIQQQ", data, phoff)
    assert p_type == 1
    at = p_offset + start - p_paddr
    assert data[at : at + len(table)] == table


def test_elf_symbol_is_remembered_per_file_version(tmp_path: Path) -> None:
    """elf_symbol caches the table lookup (issue 18 item 4: a capture waiting for the rings asked ~0.25 s
    each time) but a rebuilt file is read again: the cache key has its modification time and size."""
    r = subprocess.run(["make", "-s", "-C", str(paths.hv_dir())], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    elf = tmp_path / "image.elf"
    elf.write_bytes(paths.image_path().read_bytes())
    first = elf_symbol(elf)
    assert first is not None
    assert elf_symbol(elf) == first
    elf.write_bytes((paths.guests_dir() / "mbtest.elf").read_bytes())  # no hv_trace symbol there
    assert elf_symbol(elf) is None
    elf.unlink()
    assert elf_symbol(elf) is None
