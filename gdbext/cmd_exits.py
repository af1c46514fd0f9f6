"""hv-exits: the latest exit records from the per-CPU rings, decoded."""

from __future__ import annotations

import argparse

from hvtrace.abi import HvRecord

from . import model, target
from .command import HvCommand, emit
from .options import OptionParser, number


class HvExits(HvCommand):
    """The latest VM-exit records, decoded, with the guest instruction.

    Usage: hv-exits [-n K] [--cpu N] [--reason R] [--no-disasm]

      -n K        how many records (default 10), newest last, merged across CPUs by TSC
      --cpu N     only CPU N
      --reason R  only this exit: a kind (cpuid, msr_read, cr_access, vmcall, stage2_fault, io, ...) or a
                  native reason name (VMX: CPUID, EPT_VIOLATION; SVM: CPUID, NPF, ...)
      --no-disasm skip the instruction at each RIP

    Each line: CPU, sequence number, native reason / kind, RIP, GPA, the kind's arguments (CPUID leaf, MSR
    index, CR number, ...) and the qualification / EXITINFO decoded for that reason. The instruction is
    disassembled by capstone (x86-64, Intel syntax, with its bytes) when gdb's Python can import it (the
    repository's .venv is on its path when the Python versions match), else by gdb's own disassembler.

    Examples:
      (gdb) hv-exits -n 5
      (gdb) hv-exits --cpu 1 --reason cpuid"""

    NAME = "exits"

    def declare(self, p: OptionParser) -> None:
        p.add_argument("-n", type=number("record count"), default=10)
        p.add_argument("--cpu", type=number("CPU"))
        p.add_argument("--reason")
        p.add_argument("--no-disasm", dest="disasm", action="store_false")

    def words(self) -> list[str]:
        return [*self.parser.option_words(), *model.reason_words(0)]

    def run(self, args: argparse.Namespace) -> None:
        n, cpu, reason, disasm = args.n, args.cpu, args.reason, args.disasm
        _, d = target.discovery()
        if cpu is not None:
            model.check_cpu(d, cpu)
        if reason is not None:
            model.parse_reason(d.vendor, reason)  # validate before reading
        recs: list[HvRecord] = []
        notes: list[str] = []
        for c in range(d.cpu_count) if cpu is None else [cpu]:
            ring = model.read_ring(target.read, d, c)
            if ring is None:
                continue
            if ring.dropped and ring.head - ring.tail >= ring.capacity:
                notes.append(
                    f"note: CPU {c} ring full, {ring.dropped} newer exits dropped (no consumer): "
                    "these are the newest records kept"
                )
            got = model.latest_records(target.read, ring, ring.capacity if reason else n)
            if reason is not None:
                got = [r for r in got if model.record_matches(d.vendor, r, reason)]
            recs.extend(got[-n:])
        recs.sort(key=lambda r: (r.tsc, r.cpu, r.seq))
        recs = recs[-n:] if n else []
        if not recs:
            emit(["no matching records in the rings"])
            return
        lines = list(notes)
        for r in recs:
            lines.append(model.record_line(d.vendor, r))
            if disasm:
                lines.extend(f"    {x}" for x in target.disassemble(r.rip))
        emit(lines)
