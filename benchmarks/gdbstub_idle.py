"""The resident gdb stub present and idle vs absent (issue 17): exits/s of a CPUID storm.

Each configuration boots the hypervisor with `storm_iters=N` (every CPU executes N CPUIDs after the
self-test, then the run ends). "absent": no stub; "idle": the stub on COM3 (QEMU: `--gdb-stub hv`,
Bochs: `--gdb`, both with no gdb connected), so every exit pays the stub's poll (a countdown inline, and an
`inb` of the UART's LSR every 256th exit) and, on VT-x, the VMX-preemption timer is armed. Bochs runs
300 k exits: 50 k (~1 s) drowned in the shared machine's noise. The boot and
self-test cost (storm_iters=1) is subtracted; the two configurations alternate round by round (the
shared machine's load drifts), median of ROUNDS. Goal: within 2 %. No asserts: numbers for the notes.
Usage: gdbstub_idle.py [qemu|bochs ...]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

ROUNDS = 3
ITERS = {"qemu": 300_000, "bochs": 300_000}
STUB = {"qemu": ["--gdb", "--gdb-stub", "hv"], "bochs": ["--gdb"]}


def run(backend: str, iters: int, stub: bool) -> float:
    argv = [sys.executable, "-m", "hvtrace", "run", "--backend", backend, "--cpus", "1", "--timeout", "900",
            "--append", f"storm_iters={iters}", *(STUB[backend] if stub else [])]  # fmt: skip
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    for backend in sys.argv[1:] or list(ITERS):
        iters = ITERS[backend]
        base = statistics.median(run(backend, 1, False) for _ in range(ROUNDS))
        absent: list[float] = []
        idle: list[float] = []
        for _ in range(ROUNDS):
            absent.append(run(backend, iters, False) - base)
            idle.append(run(backend, iters, True) - base)
        a, i = statistics.median(absent), statistics.median(idle)
        print(f"{backend}: {iters} CPUID exits on 1 CPU, boot+self-test {base:.2f} s subtracted")
        print(f"  stub absent: {a:6.2f} s  {iters / a / 1e3:7.1f} k exits/s")
        print(f"  stub idle:   {i:6.2f} s  {iters / i / 1e3:7.1f} k exits/s")
        print(f"  idle/absent exit rate: {a / i:.3f}")


if __name__ == "__main__":
    main()
