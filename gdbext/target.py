"""gdb memory access for the hv-* commands: the discovery header, physical reads and writes.

On a QEMU gdbstub the commands switch the stub to physical-memory mode (``Qqemu.PhyMemMode:1``) for
the duration of one command and back afterwards, so hypervisor structures read right whatever page
tables the stopped CPU runs on. On a core file or the bare ELF gdb reads the file's segments (the ELF
core written by hvtrace has p_vaddr == p_paddr).
"""

from __future__ import annotations

import contextlib
import ctypes
from collections.abc import Iterator

import gdb

from hvtrace import relocation
from hvtrace.abi import HvDiscovery

from . import disasm
from .model import HvError, parse_discovery

NO_HV = "no hvtrace hypervisor in this target: symbol hv_trace not found"


def _remote() -> object | None:
    conn = getattr(gdb.selected_inferior(), "connection", None)
    if conn is not None and getattr(conn, "type", "") == "remote" and hasattr(conn, "send_packet"):
        return conn  # type: ignore[no-any-return]
    return None


def _phys_mode(on: bool) -> bool:
    conn = _remote()
    if conn is None:
        return False
    try:
        reply = conn.send_packet(f"Qqemu.PhyMemMode:{int(on)}")  # type: ignore[attr-defined]
    except gdb.error:
        return False
    return bytes(reply) == b"OK" if isinstance(reply, bytes | bytearray) else str(reply) == "OK"


@contextlib.contextmanager
def physical() -> Iterator[None]:
    """Physical addressing on a QEMU gdbstub for the duration of the block (a no-op elsewhere)."""
    switched = _phys_mode(True)
    try:
        yield
    finally:
        if switched:
            _phys_mode(False)


def read(addr: int, n: int) -> bytes:
    if n == 0:
        return b""
    try:
        return bytes(gdb.selected_inferior().read_memory(addr, n))
    except gdb.MemoryError:
        raise HvError(f"cannot read {n} bytes at {addr:#x} (not in this target's memory)") from None
    except gdb.error as e:
        raise HvError(f"cannot read {n} bytes at {addr:#x}: {e}") from None


def write(addr: int, data: bytes) -> None:
    try:
        gdb.selected_inferior().write_memory(addr, data)
    except gdb.error as e:
        raise HvError(f"cannot write {len(data)} bytes at {addr:#x}: {e}") from None


#: The offset gdb's symbols carry now (``symbol-file -o``): 0 until the image is found moved.
_slide = {"applied": 0, "loading": 0}


def _on_new_objfile(_event: object) -> None:
    if not _slide["loading"]:
        _slide["applied"] = 0  # `file` / `symbol-file` by the user: symbols at the link address again


gdb.events.new_objfile.connect(_on_new_objfile)


def _probe(addr: int, n: int) -> bytes | None:
    try:
        return bytes(gdb.selected_inferior().read_memory(addr, n))
    except gdb.error:
        return None


def _resymbol(sym: gdb.Symbol, slide: int) -> None:
    """Reload the symbols of ``sym``'s ELF at the image's runtime address (gdb re-resolves breakpoints)."""
    path = sym.symtab.objfile.filename
    confirm = gdb.parameter("confirm")
    gdb.execute("set confirm off", to_string=True)
    _slide["loading"] = 1
    try:
        gdb.execute(f"symbol-file -o {slide:#x} {path}", to_string=True)
    finally:
        _slide["loading"] = 0
        gdb.execute(f"set confirm {'on' if confirm else 'off'}", to_string=True)
    _slide["applied"] = slide


def applied_slide() -> int:
    """The offset gdb's hypervisor symbols carry now."""
    return _slide["applied"]


def header_at(addr: int) -> bool:
    return relocation.is_header(_probe(addr, 16))


def discovery_addr() -> int:
    """hv_trace where the hypervisor runs. The image moves itself to the top of RAM at boot
    (hv/core/relocate.c): when the header is not at the symbol's address, the slide is found in memory
    (hvtrace.relocation) and the symbols are reloaded with it, so breakpoints and frames name the
    running code."""
    try:
        sym = gdb.lookup_global_symbol("hv_trace")
    except gdb.error:
        sym = None
    if sym is None:
        raise HvError(NO_HV)
    addr = int(sym.value().address)
    if relocation.is_header(_probe(addr, 16)):
        return addr
    link = addr - _slide["applied"]
    slide = relocation.find_slide(_probe, link)
    if slide is None or slide == _slide["applied"]:
        return addr  # not booted (or not moved) yet: the caller reports what it reads there
    _resymbol(sym, slide)
    return link + slide


def discovery() -> tuple[int, HvDiscovery]:
    addr = discovery_addr()
    return addr, parse_discovery(read(addr, ctypes.sizeof(HvDiscovery)), addr)


def write_struct_field(base: int, offset: int, data: bytes) -> None:
    write(base + offset, data)


_notes_shown: set[str] = set()


def _code_at(addr: int, n: int) -> bytes:
    """Up to n bytes at addr; only to the end of the page when the next page is not readable."""
    try:
        return read(addr, n)
    except HvError:
        to_page_end = 0x1000 - (addr & 0xFFF)
        if to_page_end >= n:
            raise
        return read(addr, to_page_end)


def disassemble(addr: int, count: int = 1, *, at: int | None = None) -> list[str]:
    """Instructions at a guest address: capstone (x86-64) when gdb's Python can import it, else gdb's
    own disassembler (with a one-time note). ``at``: where the bytes are when that differs from
    ``addr`` (a guest-virtual RIP shown, its guest-physical address read)."""
    if disasm.available():
        try:
            code = _code_at(addr if at is None else at, disasm.MAX_INSN * count)
        except HvError as e:
            return [f"{addr:#x}: <cannot disassemble: {e}>"]
        lines = disasm.disassemble(code, addr, count)
        assert lines is not None
        return lines
    out = []
    if "capstone" not in _notes_shown:
        _notes_shown.add("capstone")
        out.append("(capstone not available in gdb's Python: using gdb's disassembler)")
    try:
        insns = gdb.selected_inferior().architecture().disassemble(addr, count=count)
    except (gdb.MemoryError, gdb.error) as e:
        return [*out, f"{addr:#x}: <cannot disassemble: {e}>"]
    out.extend(f"{int(i['addr']):#x}: {i['asm']}" for i in insns)
    return out
