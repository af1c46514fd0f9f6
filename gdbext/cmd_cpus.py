"""hv-cpus: one line per CPU."""

from __future__ import annotations

import argparse
import ctypes

from hvtrace import abi
from hvtrace.decode.vendor import reason_name

from . import model, target
from .command import HvCommand, emit


class HvCpus(HvCommand):
    """Per CPU: vendor, launched or not, ring, exit count, last exit, snapshot and break state.

    Usage: hv-cpus

    The exit count is the ring's head plus its dropped records (every traced exit); the last exit is the
    newest record in the ring (with a full drop-newest ring and no consumer, the newest one kept).

    Example:
      (gdb) hv-cpus
      CPU 0 SVM launched ring 4096/4096 exits 81234 last CPUID(0x72) rip=0x102a3c snapshot BREAK breaks 0"""

    NAME = "cpus"

    def run(self, args: argparse.Namespace) -> None:
        _, d = target.discovery()
        if d.cpu_count == 0:
            raise model.HvError("no CPU is online in this target (hypervisor not started yet?)")
        cfg = model.break_config_from(target.read(d.break_config, ctypes.sizeof(abi.HvBreakConfig)))
        lines = [f"{d.cpu_count} CPUs, back end {model.vendor_name(d.vendor)}, {cfg.armed} exit breaks armed"]
        for cpu in range(d.cpu_count):
            parts = [f"CPU {cpu}", model.vendor_name(d.vendor)]
            parts.append("launched" if d.launched >> cpu & 1 else "not-launched")
            ring = model.read_ring(target.read, d, cpu)
            if ring is None:
                parts.append("no ring")
            else:
                used = min(ring.head - ring.tail, ring.capacity)
                parts.append(f"ring {used}/{ring.capacity}{'' if ring.enabled else ' (off)'}")
                parts.append(f"exits {ring.exits}")
                if ring.dropped:
                    parts.append(f"dropped {ring.dropped}")
                last = model.latest_records(target.read, ring, 1)
                if last:
                    r = last[-1]
                    parts.append(f"last {reason_name(d.vendor, r.reason)}({r.reason:#x}) rip={r.rip:#x}")
            try:
                snap = model.read_snapshot(target.read, d, cpu)
                parts.append(f"snapshot {snap.why_name}")
            except model.HvError:
                parts.append("snapshot none")
            mine = [
                i
                for i in range(abi.HV_BREAK_MAX)
                if cfg.entry[i].enabled and cfg.entry[i].cpu in (cpu, abi.HV_BRK_ANY)
            ]
            parts.append(f"breaks {','.join(map(str, mine))}" if mine else "breaks none")
            if cfg.armed and cfg.last_cpu == cpu and cfg.entry[cfg.last_hit].hits:
                parts.append(f"last-hit entry {cfg.last_hit}")
            lines.append(" ".join(parts))
        emit(lines)
