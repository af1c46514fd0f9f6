"""`hvtrace report` records/s, and as a fraction of `cat FILE > /dev/null` on the same file, one run.

Writes a trace file of N synthetic records (2 CPUs, a CPUID/MSR/CR mix like the self-test's) with the
project's TraceWriter, then times `cat` and `hvtrace report` on it, each the best of ROUNDS runs.
No asserts: numbers for the notes.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from hvtrace.abi import HvExitKind, HvVendor
from hvtrace.trace.records import RECORD_DTYPE
from hvtrace.trace.tracefile import TraceWriter

N = 2_000_000
ROUNDS = 3


def make_trace(path: Path) -> None:
    rng = np.random.default_rng(1)
    recs = np.zeros(N, RECORD_DTYPE)
    recs["cpu"] = np.arange(N) % 2
    recs["seq"] = np.arange(N) // 2 + 1
    recs["tsc"] = np.arange(N) * 1000 + rng.integers(0, 500, N)
    kinds = np.array([HvExitKind.CPUID, HvExitKind.MSR_READ, HvExitKind.CR_ACCESS, HvExitKind.VMCALL])
    recs["kind"] = kinds[rng.integers(0, len(kinds), N)]
    # VMX basic reasons of those kinds (SDM Vol. 3D Appendix C): CPUID 10, RDMSR 31, CR access 28, VMCALL 18.
    reason_of_kind = {
        HvExitKind.CPUID: 10,
        HvExitKind.MSR_READ: 31,
        HvExitKind.CR_ACCESS: 28,
        HvExitKind.VMCALL: 18,
    }
    recs["reason"] = np.select([recs["kind"] == k for k in reason_of_kind], list(reason_of_kind.values()))
    recs["arg0"] = rng.integers(0, 16, N)
    recs["rip"] = 0x100000 + rng.integers(0, 0x10000, N)
    with TraceWriter(path, {"vendor": int(HvVendor.VMX), "cpus": 2, "guest": "synthetic"}) as w:
        for i in range(0, N, 65536):
            w.add(recs[i : i + 65536])


def best(argv: list[str]) -> float:
    times = []
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "bench.hvt")
        make_trace(path)
        size = path.stat().st_size
        t_cat = best(["sh", "-c", f"cat {path} > /dev/null"])
        t_report = best([sys.executable, "-m", "hvtrace", "report", str(path)])
        t_json = best([sys.executable, "-m", "hvtrace", "report", "--json", str(path)])
    print(f"trace file: {N} records, {size / 1e6:.1f} MB ({size / N:.1f} bytes/record)")
    print(f"cat > /dev/null:       {t_cat * 1e3:8.1f} ms")
    print(f"hvtrace report:        {t_report * 1e3:8.1f} ms  {N / t_report / 1e6:6.2f} M records/s")
    print(f"hvtrace report --json: {t_json * 1e3:8.1f} ms  {N / t_json / 1e6:6.2f} M records/s")
    print(
        f"report / cat time ratio: {t_report / t_cat:.1f}x"
        f" (report runs at {t_cat / t_report:.1%} of cat's speed)"
    )


if __name__ == "__main__":
    main()
