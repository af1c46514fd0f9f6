"""hv-vmcs: a CPU's VMCS (VT-x) or VMCB (AMD-V) snapshot, decoded."""

from __future__ import annotations

from . import model, target
from .cmd_guest import parse_cpu_arg
from .command import HvCommand, colour, emit

AREA_OPTIONS = {"--guest": "guest", "--host": "host", "--controls": "controls", "--exit": "exit"}


class HvVmcs(HvCommand):
    """Decode a CPU's VMCS / VMCB snapshot.

    Usage: hv-vmcs [CPU] [--guest|--host|--controls|--exit|--all] [--raw]

      CPU         CPU index (default: the CPU of the selected gdb thread, 0 on a core file)
      --guest     guest-state area only (also --host, --controls, --exit; they combine)
      --all       every field, not only those the current controls make meaningful
      --raw       values only, no decoded detail lines

    VT-x: every VMCS field by name, width and value, controls decoded bit by bit, access rights, the
    VM-instruction error by name. AMD-V: the VMCB control and save areas (width column = offset).
    The snapshot is the one the hypervisor took last (SNAPSHOT hypercall, exit break, fatal path).

    Examples:
      (gdb) hv-vmcs
      (gdb) hv-vmcs 1 --exit
      (gdb) hv-vmcs 0 --controls --raw"""

    NAME = "vmcs"
    WORDS = (*AREA_OPTIONS, "--all", "--raw")

    def run(self, args: list[str]) -> None:
        areas: list[str] = []
        all_fields = raw = False
        rest = []
        for a in args:
            if a in AREA_OPTIONS:
                areas.append(AREA_OPTIONS[a])
            elif a == "--all":
                all_fields = True
            elif a == "--raw":
                raw = True
            elif a.startswith("-"):
                raise model.HvError(f"unknown option {a!r} (options: {', '.join(self.WORDS)})")
            else:
                rest.append(a)
        _, d = target.discovery()
        cpu = parse_cpu_arg(rest, d.cpu_count)
        snap = model.read_snapshot(target.read, d, cpu)
        kw = {"areas": areas or None, "all_fields": all_fields, "raw": raw, "colourise": colour()}
        try:
            lines = snap.backend.snapshot_view(snap.fields, **kw)
        except ValueError as e:
            raise model.HvError(f"snapshot of CPU {cpu} {e}") from None
        emit([model.snapshot_title(snap), *lines])
