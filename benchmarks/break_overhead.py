"""Exit rate with no exit break vs armed, never-matching exit breaks evaluated by the hypervisor.

QEMU (SVM under TCG), 1 CPU, `storm=1` (CPUID in a loop forever). The break table is written through the
session's RAM file (what hv-break writes through gdb, built by the same gdbext/break_args code), so no
gdb is attached: an attached gdbstub alone slows TCG by about half, and its noise would hide a 2 %
effect. Windows of WINDOW_S seconds alternate between the configurations, round after round; a
window's rate is the exits the hypervisor counted on CPU 0 (ring head + dropped) over the host time.
Each configuration is compared with the (a) windows right before and after it, which cancels the
drift of the shared machine's load; the ratio printed is the median of those per-round ratios, with
its quartiles.

Three rates per window: exits per host second (wall), per CPU second of the QEMU process (user + system
time from /proc/PID/stat over the window, all its threads) and per CPU second of its vCPU thread
(/proc/PID/task/TID/stat of its busiest thread: TCG runs the guest and the hypervisor there; QEMU's
other threads' housekeeping left out). The machine's other load takes wall time from QEMU, not CPU time, so
the CPU rates move much less with it (cache and scheduling effects of a loaded host still show in
them); their resolution is one clock tick (10 ms) per window end, about 0.5 % of a 2 s window.

  (a) none:         nothing armed
  (b) hv-break:     `msr_write --msr 0x12345678`: no exit of the storm has that kind; rejected by the
                    CPU's compiled table (by_kind) before any check
  (d) hv-break if:  `cpuid if rax == 0x12345678 && rcx >= 0x10`: the kind matches every exit of the
                    storm, so the hypervisor evaluates the condition on every exit; never true
  (t) tracepoint:   `hv-trace-point cpuid`: every exit matches and is counted (an atomic add); its hit
                    count over the window's exits is printed too, as proof that the table is live

A gdb conditional breakpoint (`break trace_exit if 0`, gdb stops the VM at every exit) is ~40x slower
(PLATFORMS.md: ~2.6 k exits/s). No asserts: numbers for the notes.
Usage: break_overhead.py [ROUNDS [WINDOW_S]]   (defaults 15, 2.0)
"""

from __future__ import annotations

import ctypes
import math
import statistics
import sys
import time
from typing import NamedTuple

from hvtrace import abi, paths
from hvtrace.launch import procs
from hvtrace.launch.qemu import QemuSession
from hvtrace.trace.discovery import Discovery, discover
from hvtrace.trace.sources import SharedRamSource

sys.path.insert(0, str(paths.repo_root()))
from benchmarks.break_table import arm
from gdbext import model
from tests.integration.conftest import wait_for

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 15
WINDOW_S = float(sys.argv[2]) if len(sys.argv) > 2 else 2.0
CONFIGS = {
    "a": ("nothing armed", None),
    "b": ("hv-break msr_write --msr 0x12345678 (kind never matches)", "msr_write --msr 0x12345678"),
    "d": (
        "hv-break cpuid if rax == 0x12345678 && rcx >= 0x10 (condition evaluated at every exit)",
        "cpuid if rax == 0x12345678 && rcx >= 0x10",
    ),
    "t": ("hv-trace-point cpuid (counts every exit, never stops)", "cpuid --trace"),
}


def exits(src: SharedRamSource, ring: int) -> int:
    r = abi.HvRing.from_buffer_copy(src.read(ring, ctypes.sizeof(abi.HvRing)))
    return int(r.head + r.dropped)


def hits(src: SharedRamSource, d: Discovery) -> int:
    at = int(d.header.break_config) + model.break_entry_offset(0) + abi.HvBreak.hits.offset
    return int.from_bytes(src.read(at, 8), "little")


class Window(NamedTuple):
    wall_rate: float  # exits per host second
    cpu_rate: float  # exits per CPU second of the QEMU process
    vcpu_rate: float  # exits per CPU second of QEMU's vCPU thread (TCG runs the guest and hypervisor there)
    exits: int
    hits: int  # entry 0's hits


def window(src: SharedRamSource, d: Discovery, ring: int, pid: int, vcpu: int) -> Window:
    """One window of WINDOW_S seconds."""

    def now() -> tuple[int, int, float, float, float]:
        cpu, thread = procs.cpu_seconds(pid), procs.cpu_seconds(pid, vcpu)
        return exits(src, ring), hits(src, d), cpu, thread, time.perf_counter()

    n0, h0, c0, v0, t0 = now()
    time.sleep(WINDOW_S)
    n1, h1, c1, v1, t1 = now()
    n = n1 - n0
    return Window(n / (t1 - t0), n / (c1 - c0), n / (v1 - v0), n, h1 - h0)


def bracketed(x: list[float], a: list[float]) -> list[float]:
    """Each round's x over the mean of the (a) windows right before and after it."""
    return [v / ((a[i] + a[i + 1]) / 2) for i, v in enumerate(x)]


def spread(ratios: list[float]) -> str:
    """Median, quartiles and the median's standard error (1.253 sigma / sqrt(n) for a normal spread)."""
    if len(ratios) < 2:
        return f"{ratios[0]:.4f} (one round)"
    q = statistics.quantiles(ratios, n=4)
    se = 1.2533 * statistics.stdev(ratios) / math.sqrt(len(ratios))
    return f"{statistics.median(ratios):.4f} +- {se:.4f} (quartiles {q[0]:.4f}-{q[2]:.4f})"


def main() -> None:
    session = QemuSession(cpus=1, memory_mb=64, cmdline="storm=1", timeout=3600)
    windows: dict[str, list[Window]] = {k: [] for k in CONFIGS}
    try:
        session.start()
        wait_for(lambda: any("storm:" in line for line in session.lines), 60, "the storm")
        assert session.ram_path is not None
        assert session.proc is not None
        src = SharedRamSource(session.ram_path)
        try:
            d = discover(src, elf=paths.image_path())
            vcpu = procs.busiest_thread(session.proc.pid)  # the storm has run on it for a while
            ring = d.rings[0]
            for _ in range(ROUNDS):
                for key, (_, spec) in CONFIGS.items():
                    arm(src, d, spec)
                    time.sleep(0.1)  # settle
                    windows[key].append(window(src, d, ring, session.proc.pid, vcpu))
            arm(src, d, None)
            time.sleep(0.1)
            windows["a"].append(
                window(src, d, ring, session.proc.pid, vcpu)
            )  # closes the last round's bracket
        finally:
            src.close()
    finally:
        session.close()
    print(f"Exit rate, QEMU TCG (SVM), 1 CPU, CPUID storm, no gdb; {ROUNDS} rounds of {WINDOW_S:g} s windows")
    rates = {"QEMU CPU second": "cpu_rate", "vCPU-thread CPU second": "vcpu_rate", "host second": "wall_rate"}
    for key, (label, _) in CONFIGS.items():
        print(f"  ({key}) {label}:")
        for what, field in rates.items():
            r = [getattr(w, field) for w in windows[key]]
            print(f"      per {what}: median {statistics.median(r) / 1e3:.2f} k exits/s "
                  f"(windows {min(r) / 1e3:.2f}-{max(r) / 1e3:.2f} k)")  # fmt: skip
        counted = sum(w.hits for w in windows[key]), sum(w.exits for w in windows[key])
        print(f"      entry 0 hits: {counted[0]} of {counted[1]} exits")
    print("  Ratios to (a): median of the per-round bracketed ratios +- its standard error (quartiles):")
    for key in ("b", "d", "t"):
        for what, field in rates.items():
            ratios = bracketed(
                [getattr(w, field) for w in windows[key]], [getattr(w, field) for w in windows["a"]]
            )
            print(f"    {key}/a per {what}: {spread(ratios)}")


if __name__ == "__main__":
    main()
