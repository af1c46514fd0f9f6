"""Tracing on vs off on a CPUID-storm guest: wall-time ratio on QEMU (SVM) and Bochs (VT-x), one run.

Each configuration boots the hypervisor with `storm_iters=N` (every CPU executes N CPUIDs after the
self-test, then the run ends) and `trace=1` or `trace=0` (rings disabled; exits still counted).
The boot and self-test cost is measured separately (storm_iters=1) and subtracted. Median of ROUNDS.
No asserts: numbers for the notes.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

ROUNDS = 3
CONFIGS = {"qemu": 300_000, "bochs": 100_000}


def run(backend: str, iters: int, trace: int) -> float:
    argv = [sys.executable, "-m", "hvtrace", "run", "--backend", backend, "--timeout", "600",
            "--append", f"storm_iters={iters} trace={trace}"]  # fmt: skip
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def median(backend: str, iters: int, trace: int) -> float:
    return statistics.median(run(backend, iters, trace) for _ in range(ROUNDS))


def main() -> None:
    for backend, iters in CONFIGS.items():
        base = median(backend, 1, 1)
        on = median(backend, iters, 1) - base
        off = median(backend, iters, 0) - base
        print(f"{backend}: {iters} CPUID exits, boot+self-test {base:.2f} s subtracted")
        print(f"  tracing off: {off:6.2f} s  {iters / off / 1e3:7.1f} k exits/s")
        print(f"  tracing on:  {on:6.2f} s  {iters / on / 1e3:7.1f} k exits/s")
        print(f"  on/off wall-time ratio: {on / off:.3f}  ({(on - off) / iters * 1e6:.2f} us per record)")


if __name__ == "__main__":
    main()
