"""Long chaos-guest runs (issue 13 "Measure"): operations per CPU per back end, and hypervisor stops.

    .venv/bin/python benchmarks/chaos_run.py --ops 1000000 [--backend qemu|bochs|both] [--seed N]
        [--classes LIST] [--timeout SECONDS] [--log FILE]

Each back end boots the hypervisor with the chaos guest (QEMU/SVM: 2 CPUs, Bochs/VT-x: 1 CPU) through
`hvtrace run`, and prints per CPU the ops done, ops/s, the #GP on hypervisor memory, the unexpected
faults, and the run's end: "stops" counts runs the hypervisor ended itself (any reason but the guest's
own exit). The guest prints `chaos: cpu N progress ops=K` every 2^16 ops; each line is timestamped as it
arrives, so a run the host's timeout ends still shows how far each CPU got and at what rate (ops/s per
CPU from the `chaos: start` line to the CPU's last progress or final line: boot time excluded).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

ROOT = Path(__file__).resolve().parent.parent
ELF = ROOT / "hv" / "build" / "guests" / "chaos.elf"
CPU_RE = re.compile(r"^chaos: cpu (\d+) ops=(\d+) .*hv_gp=(\d+) .*unexpected=(\d+)")
START_RE = re.compile(r"^chaos: start .*cpus=(\d+)")
PROGRESS_RE = re.compile(r"^chaos: cpu (\d+) progress ops=(\d+)")
# hvtrace's own report of the hypervisor's status (taken from the private channel): the guest's forge
# class prints fake HVTRACE STATUS lines on its console, so those are never read here.
REPORT_RE = re.compile(r"^hvtrace: (?:hypervisor status|guest exit) .*reason=(\w+)")


@dataclass
class CpuProgress:
    ops: int = 0
    at: float = 0.0  # monotonic time the line with `ops` arrived
    final: str = ""  # the guest's end-of-run line for this CPU (hv_gp, unexpected), if it came


@dataclass
class Watch:
    """What the streamed output has shown so far."""

    started: float | None = None  # monotonic time of the `chaos: start` line
    ncpus: int = 0  # its cpus=
    cpus: dict[int, CpuProgress] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    tail: list[str] = field(default_factory=list)

    def feed(self, line: str, now: float) -> None:
        self.tail = [*self.tail[-24:], line]
        if m := START_RE.match(line):
            self.started = now
            self.ncpus = int(m[1])
        if m := PROGRESS_RE.match(line):
            self.cpus[int(m[1])] = CpuProgress(int(m[2]), now)
        elif m := CPU_RE.match(line):
            self.cpus[int(m[1])] = CpuProgress(int(m[2]), now, f"hv_gp={m[3]} unexpected={m[4]}")
        elif m := REPORT_RE.match(line):
            self.reasons.append(m[1])

    def rate(self, cpu: int) -> float:
        p = self.cpus.get(cpu, CpuProgress())
        span = p.at - self.started if self.started is not None else 0.0
        return p.ops / span if span > 0 else 0.0


def run(backend: str, cpus: int, a: argparse.Namespace, log: TextIO | None) -> int:
    """One run; prints its numbers; returns 1 when the hypervisor stopped (0 when the guest ended it)."""
    args = f"chaos seed={a.seed} ops={a.ops} cpus={cpus}" + (f" classes={a.classes}" if a.classes else "")
    argv = [
        sys.executable, "-m", "hvtrace", "run", "--backend", backend, "--cpus", str(cpus),
        "--memory", "256M", "--timeout", str(a.timeout), "--guest", str(ELF), "--append", args,
    ]  # fmt: skip
    t0 = time.monotonic()
    w = Watch()
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT) as p:
        assert p.stdout is not None
        for raw in p.stdout:
            line = raw.rstrip("\n")
            w.feed(line, time.monotonic())
            if log is not None:
                log.write(f"{time.monotonic() - t0:9.1f} {line}\n")
                log.flush()
    wall = time.monotonic() - t0
    reason = w.reasons[-1] if w.reasons else "no status line"
    # The host's timeout (124) or a signal (130, 143: SIGINT, SIGTERM) ends a run the hypervisor kept
    # going: not a stop, but not finished either.
    ended_by_host = p.returncode in (124, 130, 143)
    stopped = not ended_by_host and reason != "guest_debug_exit"
    if ended_by_host:
        reason = f"ended by the host (exit {p.returncode}: timeout {a.timeout} s or a signal), ops unfinished"
    print(f"{backend}: {cpus} CPU(s), '{args}', {wall:.0f} s wall, end: {reason}, exit {p.returncode}")
    for cpu in range(w.ncpus):
        c = w.cpus.get(cpu, CpuProgress())
        what = c.final or ("last progress line (no final line)" if c.ops else "no progress line")
        print(f"  cpu {cpu}: ops={c.ops} ({w.rate(cpu):.0f} ops/s after start) {what}")
    print(f"  hypervisor stops: {int(stopped)}")
    if stopped:
        print("\n".join(w.tail))
    return int(stopped)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ops", type=int, default=1_000_000, help="ops per CPU")
    ap.add_argument("--backend", choices=["qemu", "bochs", "both"], default="both")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--classes", default="", help="chaos classes= list (default: the guest's default mask)")
    ap.add_argument("--timeout", type=int, default=6 * 3600, help="seconds per run")
    ap.add_argument("--log", type=Path, help="also write every output line, timestamped, to this file")
    a = ap.parse_args()
    if not ELF.is_file():
        subprocess.run(["make", "-s", "-C", str(ROOT / "hv")], check=True)
    log = a.log.open("w") if a.log else None
    stops = 0
    try:
        if a.backend in ("qemu", "both"):
            stops += run("qemu", 2, a, log)
        if a.backend in ("bochs", "both"):
            stops += run("bochs", 1, a, log)
    finally:
        if log is not None:
            log.close()
    print(f"total hypervisor stops: {stops}")
    return 1 if stops else 0


if __name__ == "__main__":
    sys.exit(main())
