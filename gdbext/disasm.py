"""Guest instructions disassembled by capstone (x86-64) when gdb's Python can import it.

The capstone usage itself (lazy import, 64-bit decoder, line format) is :mod:`hvtrace.disasm`, shared
with the trace tools; it is stdlib-only at import time, so the decoders stay loadable in gdb. gdb's
Python is the system Python; hvtrace_gdb.py adds the repository's .venv site-packages to its sys.path
when the Python versions match, which is where capstone usually comes from. When the import fails,
:func:`disassemble` returns None and the caller uses gdb's own disassembler. No gdb here, so the unit
tests run this in the venv.
"""

from __future__ import annotations

from types import ModuleType

from hvtrace import disasm as _core

#: Longest x86 instruction.
MAX_INSN = _core.MAX_INSN

# whether gdb's Python could import capstone (tried once per process; the tests reset it)
_cache: dict[str, ModuleType | None] = {}


def capstone() -> ModuleType | None:
    """The capstone module, or None when it cannot be imported (tried once per process)."""
    return _core.capstone(_cache)


def available() -> bool:
    return capstone() is not None


def disassemble(code: bytes, addr: int, count: int = 1) -> list[str] | None:
    """Up to ``count`` instructions decoded from ``code`` (loaded at ``addr``), one line each:
    ``0x1000: 0f a2                cpuid``. None when capstone is unavailable; one ``(bad)`` line when
    the first bytes do not decode (decoding stops at the first undecodable instruction)."""
    cs = capstone()
    return None if cs is None else _core.format_lines(cs, code, addr, count)
