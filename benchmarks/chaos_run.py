"""Long chaos-guest runs (issue 13 "Measure"): operations per CPU per back end, and hypervisor stops.

    .venv/bin/python benchmarks/chaos_run.py --ops 1000000 [--backend qemu|bochs|both] [--seed N]
        [--classes LIST] [--timeout SECONDS]

Each back end boots the hypervisor with the chaos guest (QEMU/SVM: 2 CPUs, Bochs/VT-x: 1 CPU) through
`hvtrace run`, and prints per CPU the ops done, the #GP on hypervisor memory, the unexpected faults, and
the run's end: "stops" counts runs the hypervisor ended itself (any reason but the guest's own exit).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ELF = ROOT / "hv" / "build" / "guests" / "chaos.elf"
CPU_RE = re.compile(r"^chaos: cpu (\d+) ops=(\d+) .*hv_gp=(\d+) .*unexpected=(\d+)", re.MULTILINE)
# hvtrace's own report of the hypervisor's status (taken from the private channel): the guest's forge
# class prints fake HVTRACE STATUS lines on its console, so those are never read here.
REPORT_RE = re.compile(r"^hvtrace: (?:hypervisor status|guest exit) .*reason=(\w+)", re.MULTILINE)


def run(backend: str, cpus: int, a: argparse.Namespace) -> int:
    """One run; prints its numbers; returns 1 when the hypervisor stopped (0 when the guest ended it)."""
    args = f"chaos seed={a.seed} ops={a.ops} cpus={cpus}" + (f" classes={a.classes}" if a.classes else "")
    timeout = a.timeout
    argv = [
        sys.executable, "-m", "hvtrace", "run", "--backend", backend, "--cpus", str(cpus),
        "--memory", "256M", "--timeout", str(timeout), "--guest", str(ELF), "--append", args,
    ]  # fmt: skip
    t0 = time.monotonic()
    p = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=ROOT)
    wall = time.monotonic() - t0
    out = p.stdout + p.stderr
    reported = REPORT_RE.findall(out)
    reason = reported[-1] if reported else "no status line"
    # The host's timeout ends a run the hypervisor kept going: not a stop, but not finished either.
    timed_out = p.returncode == 124
    stopped = not timed_out and reason != "guest_debug_exit"
    if timed_out:
        reason = f"host timeout after {timeout} s (ops unfinished)"
    print(f"{backend}: {cpus} CPU(s), '{args}', {wall:.0f} s wall, end: {reason}, exit {p.returncode}")
    for cpu, done, gp, unexpected in CPU_RE.findall(out):
        rate = int(done) / wall if wall else 0.0
        print(f"  cpu {cpu}: ops={done} ({rate:.0f}/s wall) hv_gp={gp} unexpected={unexpected}")
    print(f"  hypervisor stops: {int(stopped)}")
    if stopped:
        print("\n".join(out.splitlines()[-25:]))
    return int(stopped)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ops", type=int, default=1_000_000, help="ops per CPU")
    ap.add_argument("--backend", choices=["qemu", "bochs", "both"], default="both")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--classes", default="", help="chaos classes= list (default: the guest's default mask)")
    ap.add_argument("--timeout", type=int, default=6 * 3600, help="seconds per run")
    a = ap.parse_args()
    if not ELF.is_file():
        subprocess.run(["make", "-s", "-C", str(ROOT / "hv")], check=True)
    stops = 0
    if a.backend in ("qemu", "both"):
        stops += run("qemu", 2, a)
    if a.backend in ("bochs", "both"):
        stops += run("bochs", 1, a)
    print(f"total hypervisor stops: {stops}")
    return 1 if stops else 0


if __name__ == "__main__":
    sys.exit(main())
