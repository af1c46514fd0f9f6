"""Guest instructions disassembled by capstone (x86-64) when gdb's Python can import it.

capstone is imported lazily, on the first disassembly, and only here: the decoders stay stdlib-only.
gdb's Python is the system Python; hvtrace_gdb.py adds the repository's .venv site-packages to its
sys.path when the Python versions match, which is where capstone usually comes from. When the import
fails, :func:`disassemble` returns None and the caller uses gdb's own disassembler. No gdb here, so the
unit tests run this in the venv.
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: Longest x86 instruction.
MAX_INSN = 15

_cache: dict[str, ModuleType | None] = {}


def capstone() -> ModuleType | None:
    """The capstone module, or None when it cannot be imported (tried once per process)."""
    if "capstone" not in _cache:
        try:
            _cache["capstone"] = importlib.import_module("capstone")
        except Exception:  # ImportError, or a broken install (e.g. libcapstone.so not loadable)
            _cache["capstone"] = None
    return _cache["capstone"]


def available() -> bool:
    return capstone() is not None


def disassemble(code: bytes, addr: int, count: int = 1) -> list[str] | None:
    """Up to ``count`` instructions decoded from ``code`` (loaded at ``addr``), one line each:
    ``0x1000: 0f a2                cpuid``. None when capstone is unavailable; one ``(bad)`` line when
    the first bytes do not decode (decoding stops at the first undecodable instruction)."""
    cs = capstone()
    if cs is None:
        return None
    md = cs.Cs(cs.CS_ARCH_X86, cs.CS_MODE_64)
    lines = []
    for insn in md.disasm(code, addr, count):
        raw = " ".join(f"{b:02x}" for b in insn.bytes)
        lines.append(f"{insn.address:#x}: {raw:<20} {insn.mnemonic} {insn.op_str}".rstrip())
    if not lines and code:
        raw = " ".join(f"{b:02x}" for b in code[:4])
        lines.append(f"{addr:#x}: {raw:<20} (bad)")
    return lines
