"""Synthetic but realistic ABI v2 trace files for the benchmarks, written with the real TraceWriter.

4 CPUs; a reason mix like a Linux guest under load (CPUID, MSR, I/O, EPT violations, CR access,
VMCALL, HLT, with their VMX basic reasons, SDM Vol. 3D Appendix C); per CPU monotonic TSCs with
exponential gaps, consecutive sequence numbers, a log-normal handling time (tsc_resume - tsc), a
few hundred RIPs and a CR3 per process. Generated and written in slices, so any size fits in memory.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hvtrace.abi import HvExitKind, HvVendor
from hvtrace.trace import chunk_codec
from hvtrace.trace.records import RECORD_DTYPE
from hvtrace.trace.writer import TraceWriter

CPUS = 4
TSC_HZ = 2_500_000_000
SLICE = 1 << 20  # records generated at once (80 MiB)

K = HvExitKind
# kind, VMX basic reason, share, operand values (arg0) drawn from
MIX: list[tuple[int, int, float, list[int]]] = [
    (K.CPUID, 10, 0.40, [0x0, 0x1, 0x4, 0x7, 0xB, 0xD, 0x40000000, 0x80000001, 0x80000008]),
    (K.MSR_READ, 31, 0.12, [0x1B, 0x3A, 0x48, 0x10, 0xC0000080, 0xC0000100]),
    (K.MSR_WRITE, 32, 0.10, [0x6E0, 0x48, 0xC0000100, 0x838, 0x80B]),
    (K.IO, 30, 0.12, [0x3F8, 0x3FD, 0x70, 0x71, 0x60, 0xCF8, 0xCFC, 0x604]),
    (K.STAGE2_FAULT, 48, 0.10, []),
    (K.CR_ACCESS, 28, 0.06, [0, 3, 4]),
    (K.VMCALL, 18, 0.04, [0, 1, 2]),
    (K.HLT, 12, 0.06, [0]),
]


def _slice(rng: np.random.Generator, n: int, start: int, tsc0: np.ndarray) -> np.ndarray:
    recs = np.zeros(n, RECORD_DTYPE)
    cpu = (np.arange(start, start + n) % CPUS).astype(np.uint16)
    recs["cpu"] = cpu
    recs["seq"] = (np.arange(start, start + n) // CPUS + 1).astype(np.uint64)
    which = rng.choice(len(MIX), n, p=[m[2] for m in MIX])
    kinds = np.array([m[0] for m in MIX], np.uint8)
    reasons = np.array([m[1] for m in MIX], np.uint16)
    recs["kind"], recs["reason"] = kinds[which], reasons[which]
    for j, (_k, _r, _p, vals) in enumerate(MIX):
        sel = which == j
        if vals:
            recs["arg0"][sel] = np.array(vals, np.uint64)[rng.integers(0, len(vals), int(sel.sum()))]
    s2 = which == [m[0] for m in MIX].index(K.STAGE2_FAULT)
    recs["gpa"][s2] = (0xFEE00000 + rng.integers(0, 4, int(s2.sum())) * 0x1000).astype(np.uint64)
    handling = np.exp(rng.normal(7.5, 0.6, n)).astype(np.uint64) + 600  # ~2k ticks, long tail
    gaps = rng.exponential(20_000, n).astype(np.uint64) + handling
    for c in range(CPUS):  # per CPU: exits in order, each after the previous one's resume
        sel = cpu == c
        t = tsc0[c] + np.cumsum(gaps[sel])
        recs["tsc"][sel] = t
        tsc0[c] = t[-1]
    recs["tsc_resume"] = recs["tsc"] + handling
    recs["rip"] = 0xFFFFFFFF81000000 + rng.integers(0, 400, n).astype(np.uint64) * 0x40
    recs["cr3"] = (0x1000000 + rng.integers(0, 16, n) * 0x1000).astype(np.uint64)
    recs["insn_len"] = 2
    return recs


def write(path: Path, records: int, *, codec: int = chunk_codec.DEFAULT_FLAG, seed: int = 1) -> None:
    """A ``records``-record v2 trace file at ``path``."""
    rng = np.random.default_rng(seed)
    tsc0 = np.full(CPUS, 10**9, dtype=np.uint64)
    meta = {"vendor": int(HvVendor.VMX), "vendor_name": "VMX", "cpus": CPUS, "tsc_hz": TSC_HZ}
    with TraceWriter(path, meta | {"guest": "synthetic"}, codec=codec) as w:
        for start in range(0, records, SLICE):
            w.add(_slice(rng, min(SLICE, records - start), start, tsc0))
