"""Exit rate with no exit break vs armed, never-matching exit breaks evaluated by the hypervisor.

QEMU (SVM under TCG), 1 CPU, `storm=1` (CPUID in a loop forever). The break table is written through the
session's RAM file (what hv-break writes through gdb, built by the same gdbext/break_args code), so no
gdb is attached: an attached gdbstub alone slows TCG by about half, and its noise would hide a 2 %
effect. Windows of WINDOW_S seconds alternate between the configurations, round after round; a
window's rate is the exits the hypervisor counted on CPU 0 (ring head + dropped) over the host time.
Each configuration is compared with the (a) windows right before and after it, which cancels the
drift of the shared machine's load; the ratio printed is the median of those per-round ratios.

  (a) none:         nothing armed
  (b) hv-break:     `msr_write --msr 0x12345678`: no exit of the storm has that kind; rejected by the
                    kinds mask before the table is read
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

from hvtrace import abi, paths
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


def window(src: SharedRamSource, d: Discovery, ring: int) -> tuple[float, int, int]:
    """(exits/s, exits, entry 0's hits) over one window."""
    n0, h0, t0 = exits(src, ring), hits(src, d), time.perf_counter()
    time.sleep(WINDOW_S)
    n1, h1, t1 = exits(src, ring), hits(src, d), time.perf_counter()
    return (n1 - n0) / (t1 - t0), n1 - n0, h1 - h0


def main() -> None:
    session = QemuSession(cpus=1, memory_mb=64, cmdline="storm=1", timeout=3600)
    rates: dict[str, list[float]] = {k: [] for k in CONFIGS}
    counted: dict[str, list[int]] = {k: [0, 0] for k in CONFIGS}  # exits, hits
    try:
        session.start()
        wait_for(lambda: any("storm:" in line for line in session.lines), 60, "the storm")
        assert session.ram_path is not None
        src = SharedRamSource(session.ram_path)
        try:
            d = discover(src, elf=paths.image_path())
            ring = d.rings[0]
            for _ in range(ROUNDS):
                for key, (_, spec) in CONFIGS.items():
                    arm(src, d, spec)
                    time.sleep(0.1)  # settle
                    rate, n, h = window(src, d, ring)
                    rates[key].append(rate)
                    counted[key][0] += n
                    counted[key][1] += h
            arm(src, d, None)
            rates["a"].append(window(src, d, ring)[0])  # closes the last round's bracket
        finally:
            src.close()
    finally:
        session.close()
    print(f"Exit rate, QEMU TCG (SVM), 1 CPU, CPUID storm, no gdb; {ROUNDS} rounds of {WINDOW_S:g} s windows")
    for key, (label, _) in CONFIGS.items():
        med = statistics.median(rates[key])
        print(f"  ({key}) {label}: median {med / 1e3:.2f} k exits/s (windows {min(rates[key]) / 1e3:.2f}-"
              f"{max(rates[key]) / 1e3:.2f} k)")  # fmt: skip
        print(f"      entry 0 hits: {counted[key][1]} of {counted[key][0]} exits")
    a = rates["a"]
    for key in ("b", "d", "t"):
        ratios = [x / ((a[i] + a[i + 1]) / 2) for i, x in enumerate(rates[key])]
        q = statistics.quantiles(ratios, n=4)
        print(f"  {key}/a = {statistics.median(ratios):.4f} (median of {len(ratios)} bracketed ratios; "
              f"quartiles {q[0]:.4f}-{q[2]:.4f})")  # fmt: skip


if __name__ == "__main__":
    main()
