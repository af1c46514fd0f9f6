"""Exit rate with no exit break vs armed, never-matching exit breaks evaluated by the hypervisor.

QEMU (SVM under TCG), 1 CPU, `storm=1` (CPUID in a loop forever). The break table is written through the
session's RAM file (what hv-break writes through gdb, built by the same gdbext/break_args code), so no
gdb is attached: an attached gdbstub alone slows TCG by about half, and its noise would hide a 2 %
effect. Windows of WINDOW_S seconds alternate between the configurations, round after round; a
window's rate is the exits the hypervisor counted on CPU 0 (ring head + dropped) over the host time.
Each configuration is compared with the (a) windows right before and after it, which cancels the
drift of the shared machine's load; the ratio printed is the median of those per-round ratios, with
its quartiles.

Two rates per window: exits per host second (wall), and exits per CPU second of the QEMU process (user +
system time from /proc/PID/stat over the window, all its threads). Under TCG the emulator's CPU time is
what the guest's instructions and the hypervisor's exit path cost, so the CPU rate hardly moves with the
machine's other load (which takes wall time from QEMU, not CPU time); its resolution is one clock tick
(10 ms) per window end, i.e. about 0.5 % of a 2 s window before the medians.

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
    exits: int
    hits: int  # entry 0's hits


def window(src: SharedRamSource, d: Discovery, ring: int, pid: int) -> Window:
    """One window of WINDOW_S seconds."""
    n0, h0, c0, t0 = exits(src, ring), hits(src, d), procs.cpu_seconds(pid), time.perf_counter()
    time.sleep(WINDOW_S)
    n1, h1, c1, t1 = exits(src, ring), hits(src, d), procs.cpu_seconds(pid), time.perf_counter()
    return Window((n1 - n0) / (t1 - t0), (n1 - n0) / (c1 - c0), n1 - n0, h1 - h0)


def bracketed(x: list[float], a: list[float]) -> list[float]:
    """Each round's x over the mean of the (a) windows right before and after it."""
    return [v / ((a[i] + a[i + 1]) / 2) for i, v in enumerate(x)]


def spread(ratios: list[float]) -> str:
    q = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
    return f"{statistics.median(ratios):.4f} (quartiles {q[0]:.4f}-{q[2]:.4f})"


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
            ring = d.rings[0]
            for _ in range(ROUNDS):
                for key, (_, spec) in CONFIGS.items():
                    arm(src, d, spec)
                    time.sleep(0.1)  # settle
                    windows[key].append(window(src, d, ring, session.proc.pid))
            arm(src, d, None)
            time.sleep(0.1)
            windows["a"].append(window(src, d, ring, session.proc.pid))  # closes the last round's bracket
        finally:
            src.close()
    finally:
        session.close()
    print(f"Exit rate, QEMU TCG (SVM), 1 CPU, CPUID storm, no gdb; {ROUNDS} rounds of {WINDOW_S:g} s windows")
    for key, (label, _) in CONFIGS.items():
        wall, cpu = [w.wall_rate for w in windows[key]], [w.cpu_rate for w in windows[key]]
        print(f"  ({key}) {label}:")
        print(f"      per host second: median {statistics.median(wall) / 1e3:.2f} k exits/s "
              f"(windows {min(wall) / 1e3:.2f}-{max(wall) / 1e3:.2f} k)")  # fmt: skip
        print(f"      per QEMU CPU second: median {statistics.median(cpu) / 1e3:.2f} k exits/s "
              f"(windows {min(cpu) / 1e3:.2f}-{max(cpu) / 1e3:.2f} k)")  # fmt: skip
        counted = sum(w.hits for w in windows[key]), sum(w.exits for w in windows[key])
        print(f"      entry 0 hits: {counted[0]} of {counted[1]} exits")
    a_wall, a_cpu = [w.wall_rate for w in windows["a"]], [w.cpu_rate for w in windows["a"]]
    print("  Ratios to (a), median of the per-round bracketed ratios (quartiles):")
    for key in ("b", "d", "t"):
        wall = bracketed([w.wall_rate for w in windows[key]], a_wall)
        cpu = bracketed([w.cpu_rate for w in windows[key]], a_cpu)
        print(f"    {key}/a  per CPU second {spread(cpu)};  per host second {spread(wall)}")


if __name__ == "__main__":
    main()
