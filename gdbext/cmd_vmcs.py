"""hv-vmcs: a CPU's VMCS (VT-x) or VMCB (AMD-V) snapshot, decoded."""

from __future__ import annotations

import argparse

from . import live_vmcs, model, target
from .cmd_guest import parse_cpu_arg
from .command import HvCommand, colour, emit
from .options import OptionParser

AREAS = ("guest", "host", "controls", "exit")


class HvVmcs(HvCommand):
    """Decode a CPU's VMCS / VMCB snapshot.

    Usage: hv-vmcs [CPU] [--guest|--host|--controls|--exit|--all] [--raw] [--live]

      CPU         CPU index (default: the CPU of the selected gdb thread, 0 on a core file)
      --guest     guest-state area only (also --host, --controls, --exit; they combine)
      --all       every field, not only those the current controls make meaningful
      --raw       values only, no decoded detail lines
      --live      VT-x on the hypervisor's gdb stub: VMREAD every snapshot field again on the stopped
                  CPU and list VM_EXIT_REASON and the fields whose live value differs

    VT-x: every VMCS field by name, width and value, controls decoded bit by bit, access rights, the
    VM-instruction error by name. AMD-V: the VMCB control and save areas (width column = offset).
    The snapshot is the one the hypervisor took last (SNAPSHOT hypercall, exit break, fatal path).

    Examples:
      (gdb) hv-vmcs
      (gdb) hv-vmcs 1 --exit
      (gdb) hv-vmcs 0 --controls --raw"""

    NAME = "vmcs"

    def declare(self, p: OptionParser) -> None:
        p.add_argument("cpu", nargs="*")
        for area in AREAS:
            p.add_argument(f"--{area}", dest="areas", action="append_const", const=area)
        p.add_argument("--all", action="store_true")
        p.add_argument("--raw", action="store_true")
        p.add_argument("--live", action="store_true")

    def run(self, args: argparse.Namespace) -> None:
        _, d = target.discovery()
        cpu = parse_cpu_arg(args.cpu, d.cpu_count)
        snap = model.read_snapshot(target.read, d, cpu)
        kw = {"areas": args.areas, "all_fields": args.all, "raw": args.raw, "colourise": colour()}
        try:
            lines = snap.backend.snapshot_view(snap.fields, **kw)
        except ValueError as e:
            raise model.HvError(f"snapshot of CPU {cpu} {e}") from None
        if args.live and snap.backend.snapshot_name != "VMCS":
            raise model.HvError(f"--live reads a VMCS (VT-x); this target has a {snap.backend.snapshot_name}")
        live = live_vmcs.compare_lines(cpu, snap.fields) if args.live else []
        emit([model.snapshot_title(snap), *lines, *live])
