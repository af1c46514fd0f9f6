"""Exit rate with no breakpoint vs armed, never-matching exit breaks vs a gdb conditional breakpoint.

QEMU (SVM under TCG), 1 CPU, `storm=1` (CPUID in a loop forever). One session and one gdb (pygdbmi, as
in tests/integration/test_gdb_qemu.py) serve every configuration: attach once the storm runs, load
the symbols where the image runs (hv-symbols), then in interleaved windows per round: set the
configuration up, continue, let the guest run WINDOW seconds, interrupt, tear it down. The rate of a
window is the exits the hypervisor counted (hv-cpus: published + dropped records) over the host time
from the continue to the interrupt's stop. Interleaving cancels drift of the shared machine's load.

  (a) none:         nothing armed
  (b) hv-break:     `hv-break msr_write --msr 0x12345678`: the kind never matches (one compare)
  (d) hv-break if:  `hv-break cpuid if rax == 0x12345678 && rcx >= 0x10`: the kind matches every exit
                    of the storm, so the hypervisor evaluates the condition on every exit; never true
  (c) gdb cond:     `break trace_exit if 0`: gdb stops the VM at every exit, evaluates the condition
                    host-side and resumes (PLATFORMS.md: ~2.6 k exits/s)

Prints the median exits/s per configuration and the ratios to (a). No asserts: numbers for the notes.
Usage: break_overhead.py [ROUNDS [WINDOW_S [CONFIGS]]]   (defaults 5, 4.0, abd; c is slow)
"""

from __future__ import annotations

import re
import statistics
import sys
import time

from hvtrace import paths
from hvtrace.launch.qemu import QemuSession

sys.path.insert(0, str(paths.repo_root()))
from hvtrace.gdbmi import Gdb
from tests.integration.conftest import gdb_on

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
WINDOW_S = float(sys.argv[2]) if len(sys.argv) > 2 else 4.0
CHOSEN = sys.argv[3] if len(sys.argv) > 3 else "abd"
ALL_CONFIGS = {
    "a": ("no breakpoint", [], []),
    "b": ("hv-break msr_write --msr 0x12345678 (armed, kind never matches)",
          ["hv-break msr_write --msr 0x12345678"], ["hv-break delete all"]),
    "d": ("hv-break cpuid if rax == 0x12345678 && rcx >= 0x10 (condition evaluated at every exit)",
          ["hv-break cpuid if rax == 0x12345678 && rcx >= 0x10"], ["hv-break delete all"]),
    "c": ("gdb: break trace_exit if 0 (evaluated by gdb at every exit)",
          ["break trace_exit if 0"], ["delete"]),
}  # fmt: skip
CONFIGS = {k: ALL_CONFIGS[k] for k in CHOSEN if k in ALL_CONFIGS}
EXITS_RE = re.compile(r"^CPU 0 \S+ .* exits (\d+)", re.MULTILINE)


def exits(gdb: Gdb) -> int:
    m = EXITS_RE.search(gdb.ok("hv-cpus"))
    if m is None:
        raise RuntimeError("hv-cpus printed no exit count for CPU 0")
    return int(m.group(1))


def window(gdb: Gdb, setup: list[str], teardown: list[str]) -> float:
    """Exits per second over one window with ``setup`` in force."""
    for command in setup:
        gdb.ok(command)
    before = exits(gdb)
    t0 = time.perf_counter()
    gdb.cmd("-exec-continue", drain=0)
    time.sleep(WINDOW_S)
    gdb.interrupt()
    seconds = time.perf_counter() - t0
    after = exits(gdb)
    for command in teardown:
        gdb.ok(command)
    return (after - before) / seconds


def main() -> None:
    rates: dict[str, list[float]] = {k: [] for k in CONFIGS}
    session = QemuSession(cpus=1, memory_mb=64, cmdline="storm=1", timeout=3600)
    with gdb_on(session, "storm:") as gdb:
        gdb.ok("hv-symbols")
        for _ in range(ROUNDS):
            for key, (_, setup, teardown) in CONFIGS.items():
                rates[key].append(window(gdb, setup, teardown))
    print(f"Exit rate, QEMU TCG (SVM), 1 CPU, CPUID storm; median of {ROUNDS} windows of {WINDOW_S:g} s")
    med = {k: statistics.median(v) for k, v in rates.items()}
    for key, (label, _, _) in CONFIGS.items():
        spread = f"{min(rates[key]) / 1e3:.1f}-{max(rates[key]) / 1e3:.1f}"
        print(f"  ({key}) {label}")
        us = 1e6 / med[key]
        print(f"      {med[key] / 1e3:8.2f} k exits/s  ({us:7.2f} us per exit; windows {spread} k)")
    if "a" not in med:
        return
    for key in ("b", "d"):
        if key in med:
            print(f"  {key}/a = {med[key] / med['a']:.4f}")
    if "c" in med:
        print(f"  c/a = {med['c'] / med['a']:.4f}  ({med['a'] / med['c']:.0f}x slower)")


if __name__ == "__main__":
    main()
