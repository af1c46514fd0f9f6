"""VT-x basic exit reasons as records carry them (Intel SDM Vol. 3D Appendix C, Table C-1).

One table for the whole project: hvtrace.decode.vmx_exits, which mirrors hv/vmx/names.c.
"""

from __future__ import annotations

from typing import Final

from hvtrace.decode.vmx_exits import EXIT_REASONS

__all__ = ["EXIT_REASONS", "EXIT_REASON_ENTRY_FAILURE", "exit_reason_name"]

#: Bit 31 of the exit-reason field: VM-entry failure (SDM Vol. 3C 28.2.1).
EXIT_REASON_ENTRY_FAILURE: Final = 1 << 31


def exit_reason_name(reason: int) -> str:
    """Name of the basic exit reason (bits 15:0), ``UNKNOWN`` like names.c for reasons it lacks."""
    return EXIT_REASONS.get(reason & 0xFFFF, "UNKNOWN")
