"""Exit rate with no breakpoint vs an armed, never-matching hv-break vs a gdb conditional breakpoint.

QEMU (SVM under TCG), 1 CPU, `storm_iters=N`: after the self-test the guest executes N CPUIDs, prints
"storm: done", and the run ends. Every configuration is driven the same way through real gdb (pygdbmi,
as in tests/integration/test_gdb_qemu.py): attach, `break guest_storm_count` (the guest's entry to the
storm), continue to it, delete that breakpoint, set up the configuration, continue, and time from that
continue to the "storm: done" console line:

  (a) none:         nothing armed (gdb attached, no breakpoint inserted)
  (b) hv-break:     `hv-break msr_write --msr 0x12345678`, evaluated in the hypervisor, never matches
                    (plus gdb's breakpoint at hv_break_hit, never reached)
  (c) gdb cond:     `break trace_exit if 0`: gdb stops the VM at every exit (trace_exit runs once per
                    exit), evaluates the condition host-side and resumes
  (d) hv-break if:  `hv-break cpuid if rax == 0x12345678 && rcx >= 0x10`: the kind matches every exit
                    of the storm, so the hypervisor evaluates the condition on every exit; never true

The same measurement with storm_iters=1 (printk, the done line, the APs' handshake) is subtracted;
(c) runs a smaller N (PLATFORMS.md: ~2.6 k exits/s). Rounds are interleaved across configurations;
medians. Prints exits/s and the ratios. No asserts: numbers for the notes.

Usage: break_overhead.py [ROUNDS [N_FAST [N_COND [CONFIGS]]]]  (CONFIGS: letters, default abcd)
"""

from __future__ import annotations

import statistics
import sys
import threading
import time

from hvtrace import paths
from hvtrace.launch.qemu import QemuSession

sys.path.insert(0, str(paths.repo_root()))
from hvtrace.gdbmi import Gdb

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 3
N_FAST = int(sys.argv[2]) if len(sys.argv) > 2 else 300_000
N_COND = int(sys.argv[3]) if len(sys.argv) > 3 else 10_000
HV_BREAK = "hv-break msr_write --msr 0x12345678"
CONDITIONAL = "break trace_exit if 0"
HV_BREAK_IF = "hv-break cpuid if rax == 0x12345678 && rcx >= 0x10"
CHOSEN = sys.argv[4] if len(sys.argv) > 4 else "abcd"
ALL_CONFIGS = {
    "a": ("no breakpoint", [], N_FAST),
    "b": (f"{HV_BREAK} (armed, never matches)", [HV_BREAK], N_FAST),
    "c": (f"gdb: {CONDITIONAL} (evaluated by gdb at every exit)", [CONDITIONAL], N_COND),
    "d": (f"{HV_BREAK_IF} (evaluated by the hypervisor at every exit, never true)", [HV_BREAK_IF], N_FAST),
}
CONFIGS = {k: v for k, v in ALL_CONFIGS.items() if k in CHOSEN or k == "a"}
DONE = "storm: done"


def listening(port: int) -> bool:
    """Whether some socket listens on 127.0.0.1:port (from /proc/net/tcp: state 0A is LISTEN)."""
    want = f"0100007F:{port:04X}"
    with open("/proc/net/tcp") as f:
        return any(cols[1] == want and cols[3] == "0A" for cols in (line.split() for line in f))


def storm_seconds(setup: list[str], iters: int) -> float:
    """Seconds from the continue at guest_storm_count to the "storm: done" line."""
    done = threading.Event()
    stamp: list[float] = []

    def on_line(line: str) -> None:
        if DONE in line and not done.is_set():
            stamp.append(time.perf_counter())
            done.set()

    session = QemuSession(cpus=1, cmdline=f"storm_iters={iters}", timeout=3600, on_line=on_line)
    try:
        with Gdb() as gdb:
            gdb.load()  # before QEMU starts: a storm_iters=1 run is over in about a second
            session.start()
            # Attach as soon as the gdbstub listens (no probe connection: QEMU would take it for gdb).
            deadline = time.monotonic() + 60
            while not listening(session.gdb_port):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"QEMU's gdbstub never listened on port {session.gdb_port}")
                time.sleep(0.002)
            gdb.ok(f"target remote 127.0.0.1:{session.gdb_port}")  # QEMU stops the VM on attach
            gdb.ok("break guest_storm_count")
            stop = gdb.continue_until_stop(timeout=120)
            frames = [
                r["payload"] for r in stop.records if r["type"] == "notify" and r["message"] == "stopped"
            ]
            where = frames[-1].get("frame", {}).get("func") if frames else None
            if where != "guest_storm_count":
                raise RuntimeError(f"expected a stop at guest_storm_count, got {frames}")
            if done.is_set():
                raise RuntimeError("the storm ended before gdb stopped at guest_storm_count")
            gdb.ok("delete")
            for command in setup:
                gdb.ok(command)
            gdb.ctl.write("-exec-continue", timeout_sec=0, raise_error_on_timeout=False, read_response=False)
            t0 = time.perf_counter()
            if not done.wait(3600):
                raise TimeoutError(f"no {DONE!r} line")
            seconds = stamp[0] - t0
        session.wait(60)
        return seconds
    finally:
        session.close()


def main() -> None:
    runs: dict[tuple[str, int], list[float]] = {}
    for _ in range(ROUNDS):
        for key, (_, setup, iters) in CONFIGS.items():
            for n in (1, iters):
                runs.setdefault((key, n), []).append(storm_seconds(setup, n))
    rate = {}
    print(f"Exit rate, QEMU TCG (SVM), 1 CPU, CPUID storm; median of {ROUNDS} runs, storm_iters=1 subtracted")
    for key, (label, _, iters) in CONFIGS.items():
        base = statistics.median(runs[(key, 1)])
        total = statistics.median(runs[(key, iters)])
        rate[key] = iters / (total - base)
        print(f"  ({key}) {label}")
        print(
            f"      N={iters}: {total:7.3f} s - {base:.3f} s base -> {rate[key] / 1e3:8.2f} k exits/s"
            f"  ({1e6 / rate[key]:7.1f} us per exit)"
        )
    if "b" in rate:
        print(f"  b/a = {rate['b'] / rate['a']:.3f}   (armed-but-never-matching hv-break vs none)")
    if "d" in rate:
        print(f"  d/a = {rate['d'] / rate['a']:.3f}   (hv-break with a never-true condition vs none)")
    if "c" in rate:
        extra_us = 1e6 / rate["c"] - 1e6 / rate["a"]
        print(
            f"  c/a = {rate['c'] / rate['a']:.4f}  (gdb conditional breakpoint vs none: "
            f"{rate['a'] / rate['c']:.0f}x slower, +{extra_us:.0f} us per exit)"
        )


if __name__ == "__main__":
    main()
