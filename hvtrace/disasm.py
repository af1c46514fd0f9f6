"""x86-64 disassembly of guest instructions with capstone, shared by the gdb face and the trace tools.

Stdlib only at import time: capstone is imported lazily, on the first disassembly, so this module loads
in gdb's embedded Python too (gdbext/disasm.py builds on it; there capstone may be missing, and callers
fall back). ``cache`` arguments let a caller keep its own record of whether the import worked.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any, NamedTuple

#: Longest x86 instruction (Intel SDM vol. 2, 2.3.11: "the maximum length of an instruction is 15 bytes").
MAX_INSN = 15

_cache: dict[str, ModuleType | None] = {}
_decoders: dict[ModuleType, Any] = {}  # capstone module -> its Cs(X86, MODE_64) decoder


class Insn(NamedTuple):
    """One decoded instruction: ``text`` is ``mnemonic operands`` (Intel syntax), ``size`` its bytes."""

    address: int
    raw: bytes
    text: str

    @property
    def size(self) -> int:
        return len(self.raw)


def capstone(cache: dict[str, ModuleType | None] | None = None) -> ModuleType | None:
    """The capstone module, or None when it cannot be imported (tried once per ``cache``)."""
    cache = _cache if cache is None else cache
    if "capstone" not in cache:
        try:
            cache["capstone"] = importlib.import_module("capstone")
        except Exception:  # ImportError, or a broken install (e.g. libcapstone.so not loadable)
            cache["capstone"] = None
    return cache["capstone"]


def available() -> bool:
    return capstone() is not None


def decode(cs: ModuleType, code: bytes, addr: int, count: int = 1) -> list[Insn]:
    """Up to ``count`` instructions of ``code`` (loaded at ``addr``), 64-bit mode; decoding stops at the
    first undecodable instruction (so an empty list: the first bytes do not decode)."""
    md = _decoders.get(cs)
    if md is None:
        md = _decoders[cs] = cs.Cs(cs.CS_ARCH_X86, cs.CS_MODE_64)
    return [
        Insn(i.address, bytes(i.bytes), f"{i.mnemonic} {i.op_str}".rstrip())
        for i in md.disasm(bytes(code), addr, count)
    ]


def format_lines(cs: ModuleType, code: bytes, addr: int, count: int = 1) -> list[str]:
    """One line per instruction, ``0x1000: 0f a2                cpuid``; one ``(bad)`` line when the first
    bytes do not decode; nothing for no bytes."""
    lines = []
    for insn in decode(cs, code, addr, count):
        raw = " ".join(f"{b:02x}" for b in insn.raw)
        lines.append(f"{insn.address:#x}: {raw:<20} {insn.text}".rstrip())
    if not lines and code:
        raw = " ".join(f"{b:02x}" for b in code[:4])
        lines.append(f"{addr:#x}: {raw:<20} (bad)")
    return lines


def disassemble(code: bytes, addr: int, count: int = 1) -> list[str] | None:
    """:func:`format_lines` with this process's capstone; None when capstone is unavailable."""
    cs = capstone()
    return None if cs is None else format_lines(cs, code, addr, count)


def instruction(code: bytes, addr: int = 0) -> Insn | None:
    """The first instruction of ``code``; None when capstone is unavailable or the bytes do not decode."""
    cs = capstone()
    if cs is None or not code:
        return None
    insns = decode(cs, code, addr, 1)
    return insns[0] if insns else None
