"""hv-guest: guest registers from a CPU's snapshot."""

from __future__ import annotations

import argparse

import gdb

from . import model, target
from .command import HvCommand, emit
from .options import OptionParser


def default_cpu() -> int:
    """The selected gdb thread's CPU on a QEMU gdbstub (one thread per CPU), else 0."""
    try:
        thread = gdb.selected_thread()
    except gdb.error:
        return 0
    return max(int(thread.num) - 1, 0) if thread is not None else 0


def parse_cpu_arg(args: list[str], d_cpus: int) -> int:
    if len(args) > 1:
        raise model.HvError(f"expected at most one CPU number (got {' '.join(args)!r})")
    cpu = model.parse_int(args[0], "CPU number") if args else default_cpu()
    if not 0 <= cpu < max(d_cpus, 1):
        raise model.HvError(f"no CPU {cpu} (this target has {d_cpus} CPUs: 0-{d_cpus - 1})")
    return cpu


class HvGuest(HvCommand):
    """Guest general-purpose and control registers at the CPU's last snapshot.

    Usage: hv-guest [CPU]   (default: the CPU of the selected gdb thread)

    GPRs come from the snapshot's gpr[] (the exit frame), RIP/RSP/RFLAGS/CR0/CR3/CR4/EFER from the
    VMCS / VMCB fields in the same snapshot (taken at an exit break, a SNAPSHOT hypercall or a fatal error).

    Examples:
      (gdb) hv-guest        # CPU 0
      (gdb) hv-guest 1"""

    NAME = "guest"

    def declare(self, p: OptionParser) -> None:
        p.add_argument("cpu", nargs="*")

    def run(self, args: argparse.Namespace) -> None:
        _, d = target.discovery()
        cpu = parse_cpu_arg(args.cpu, d.cpu_count)
        snap = model.read_snapshot(target.read, d, cpu)
        emit([model.snapshot_title(snap), *model.guest_lines(snap)])
