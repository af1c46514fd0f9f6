"""hv-symbols: the hypervisor's symbols at the address it runs at."""

from __future__ import annotations

import argparse

from . import target
from .command import HvCommand, emit


class HvSymbols(HvCommand):
    """Reload the hypervisor's symbols where its image runs, and show the slide.

    Usage: hv-symbols

    The image is linked at 1 MiB and moves itself to the top of RAM at boot (hv/core/relocate.c).
    Every hv-* command finds the slide on first use (the discovery header hv_trace at its link address
    + k * 2 MiB) and reloads the ELF with `symbol-file -o SLIDE`; this command does only that, so that
    `break FUNCTION`, `info symbol $pc` and backtraces name the running code. `hvtrace gdb` runs it after
    connecting.

    Example:
      (gdb) hv-symbols
      hv-symbols: image at link address + 0xfe00000 (hv_trace at 0xff13ac0)"""

    NAME = "symbols"

    def run(self, args: argparse.Namespace) -> None:
        addr = target.discovery_addr()
        if not target.header_at(addr):
            emit([f"{self.label}: no running hypervisor found in memory: symbols stay at the link address"])
            return
        emit([f"{self.label}: image at link address + {target.applied_slide():#x} (hv_trace at {addr:#x})"])
