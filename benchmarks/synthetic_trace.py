"""A synthetic capture written with the real TraceWriter, shaped like a 2-CPU CPUID/MSR storm: exits every
~2 µs per CPU at 3 GHz, ~0.4 µs handling, a mix of reasons and a few distinct RIPs. Used by the query and
export benchmarks (`python -m benchmarks.synthetic_trace N OUT` writes one)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from hvtrace.abi import HvExitKind, HvVendor
from hvtrace.trace.records import RECORD_DTYPE
from hvtrace.trace.tracefile import TraceWriter

HZ = 3_000_000_000
# (kind, VMX basic reason, share): CPUID 10, RDMSR 31, WRMSR 32, I/O 30, EPT violation 48
MIX = [(HvExitKind.CPUID, 10, 0.6), (HvExitKind.MSR_READ, 31, 0.15), (HvExitKind.MSR_WRITE, 32, 0.1),
       (HvExitKind.IO, 30, 0.1), (HvExitKind.STAGE2_FAULT, 48, 0.05)]  # fmt: skip


def make(n: int, cpus: int = 2, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    per = n // cpus
    parts = []
    for cpu in range(cpus):
        r = np.zeros(per, RECORD_DTYPE)
        r["seq"] = np.arange(1, per + 1)
        r["tsc"] = 1_000_000 + cpu * 777 + np.cumsum(rng.integers(3_000, 9_000, per))
        r["tsc_resume"] = r["tsc"] + rng.integers(900, 1_500, per)
        r["cpu"] = cpu
        pick = rng.choice(len(MIX), per, p=[m[2] for m in MIX])
        r["kind"] = np.array([int(m[0]) for m in MIX])[pick]
        r["reason"] = np.array([m[1] for m in MIX])[pick]
        r["rip"] = np.uint64(0xFFFFFFFF81000000) + rng.integers(0, 64, per).astype(np.uint64) * np.uint64(
            0x40
        )
        r["arg0"] = rng.integers(0, 16, per)
        r["insn_len"] = 2
        r["cr3"] = 0x1000
        parts.append(r)
    return np.concatenate(parts)


def write(path: Path, n: int, cpus: int = 2) -> Path:
    recs = make(n, cpus)
    meta = {"vendor": int(HvVendor.VMX), "vendor_name": "VMX", "cpus": cpus, "tsc_hz": HZ}
    with TraceWriter(path, meta) as w:
        step = 1 << 16
        per = n // cpus
        for i in range(0, per, step):  # interleaved per CPU, as a capture delivers them
            w.add(np.concatenate([recs[c * per + i : c * per + min(i + step, per)] for c in range(cpus)]))
    return path


def write_in_child(path: Path, n: int) -> None:
    """The trace file, written by a child process: the caller stays small, so the RSS of the commands
    it forks is theirs (a forked child starts with its parent's resident pages)."""
    subprocess.run([sys.executable, __file__, str(n), str(path)], check=True)


if __name__ == "__main__":
    write(Path(sys.argv[2]), int(sys.argv[1]))
