"""Kernel symbols for the Linux guest. Debian's kernel package ships no real System.map (its
/boot/System.map-* is a one-line pointer to the -dbg package, hundreds of MB), so symbols come from the
running guest: /init runs :data:`KALLSYMS_CMD` (the ``hvtrace_cmd`` kernel argument), which prints the
/proc/kallsyms lines of the CPUID and MSR functions, each with the symbol after it (its end), and the
kernel's text bounds. Those are run-time addresses (KASLR applied); :func:`link_text_address` reads the
link-time address of the kernel's text from the ELF headers inside the bzImage, so the two give the
kernel's real slide."""

from __future__ import annotations

import io
import lzma
import re
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import Final

from elftools.elf.elffile import ELFFile

from .errors import GuestAssetError

#: ``hvtrace_cmd`` value (no double quotes: the kernel command line quotes it): busybox grep, -A1 for the
#: symbol that ends each match.
KALLSYMS_CMD: Final = (
    "busybox grep -A1 -e msr -e cpuid -e ' _text$' -e ' _etext$' -e entry_SYSCALL_64 /proc/kallsyms"
)
LINE_RE: Final = re.compile(r"^[0-9a-f]{16} [a-zA-Z] \S+$")
_XZ_MAGIC: Final = b"\xfd7zXZ\x00"


def kallsyms_lines(console: Iterable[str]) -> list[str]:
    """The /proc/kallsyms lines among a guest's console lines."""
    return [s for line in console if LINE_RE.match(s := line.strip())]


def link_text_address(bzimage: Path) -> int:
    """The link-time virtual address of the kernel's first loadable segment (its ``_text``), from the
    ELF vmlinux compressed inside the bzImage (xz: Debian's CONFIG_KERNEL_XZ). The payload is found by
    the setup header's payload_offset / payload_length (Documentation/x86/boot.rst, protocol 2.08)."""
    data = bzimage.read_bytes()
    setup_sects = data[0x1F1] or 4
    offset, length = struct.unpack_from("<II", data, 0x248)
    start = (setup_sects + 1) * 512 + offset
    payload = data[start : start + length]
    if not payload.startswith(_XZ_MAGIC):
        raise GuestAssetError(f"{bzimage}: the kernel payload is not xz-compressed")
    head = lzma.LZMADecompressor().decompress(payload, max_length=1 << 16)  # the ELF and program headers
    elf = ELFFile(io.BytesIO(head))
    for seg in elf.iter_segments():
        if seg["p_type"] == "PT_LOAD":
            return int(seg["p_vaddr"])
    raise GuestAssetError(f"{bzimage}: the vmlinux inside has no PT_LOAD segment")
