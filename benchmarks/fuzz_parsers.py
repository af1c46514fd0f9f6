"""Fuzz the host-side parsers with many inputs: the trace-file reader, the 0xE9 frame-stream parser,
discovery's header validation and the ring-header validation.

Each input is random bytes or a mutation of a valid seed (bit flips, overwrites, huge values at
length/count fields, truncation, duplicated / removed / swapped blocks; checksums recomputed half of
the time so the mutations reach the deeper checks) — hvtrace.trace.mutate, shared with the CI tests
(tests/unit/test_fuzz_*.py, which run a few thousand inputs through hypothesis).

The contract checked: a parser returns, or raises TraceError with a one-line message. Anything else is
a crash: counted, the first traceback of each distinct crash site printed, the input saved with
--crash-dir. Hangs: an input that takes longer than --hang-seconds is interrupted and counted.
Absurd allocations: the address space is limited (--mem-limit-mb), so one becomes a MemoryError crash.

    .venv/bin/python benchmarks/fuzz_parsers.py                 # 10^6 inputs per parser
    .venv/bin/python benchmarks/fuzz_parsers.py --inputs 20000 --parser frames --seed 7

Prints inputs tried, per parser, crashes, hangs, inputs per second, the slowest input. No asserts;
exit 1 when a crash or hang was found.
"""

from __future__ import annotations

import argparse
import random
import resource
import signal
import sys
import time
import traceback
from pathlib import Path
from types import FrameType

from hvtrace.trace.errors import TraceError
from hvtrace.trace.mutate import TARGETS, fuzz_input


class Hang(Exception):
    pass


def _alarm(_sig: int, _frame: FrameType | None) -> None:
    raise Hang


def fuzz(name: str, n: int, seed: int, hang_s: float, crash_dir: Path | None) -> dict[str, float]:
    seeds_of, fix, run = TARGETS[name]
    seeds = seeds_of()
    for s in seeds:
        run(s)  # the seeds themselves must parse cleanly
    rng = random.Random(seed)
    crashes = hangs = errors = 0
    sites: set[tuple[str, str, int, str]] = set()
    slowest = 0.0
    t0 = time.perf_counter()
    for i in range(n):
        data = fuzz_input(rng, seeds, fix)
        t = time.perf_counter()
        signal.setitimer(signal.ITIMER_REAL, hang_s)
        try:
            run(data)
        except TraceError as e:
            errors += 1
            if "\n" in e.message:
                crashes += 1
                print(f"{name}: input {i}: multi-line error message: {e.message!r}", file=sys.stderr)
        except Hang:
            hangs += 1
            print(f"{name}: input {i} ({len(data)} bytes) ran longer than {hang_s}s", file=sys.stderr)
            if crash_dir is not None:
                (crash_dir / f"{name}-hang-{i}.bin").write_bytes(data)
        except Exception as e:  # the contract: nothing but TraceError
            crashes += 1
            tb = traceback.extract_tb(e.__traceback__)[-1]
            # a broken target invariant (AssertionError) is told apart by its message, not its line
            what = str(e) if isinstance(e, AssertionError) else ""
            site = (type(e).__name__, tb.filename, tb.lineno or 0, what)
            if site not in sites:
                sites.add(site)
                print(f"{name}: input {i}: {type(e).__name__}: {e}", file=sys.stderr)
                traceback.print_exc(limit=-4, file=sys.stderr)
            if crash_dir is not None:
                (crash_dir / f"{name}-crash-{i}.bin").write_bytes(data)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        slowest = max(slowest, time.perf_counter() - t)
    dt = time.perf_counter() - t0
    return {
        "inputs": n,
        "trace_errors": errors,
        "crashes": crashes,
        "crash_sites": len(sites),
        "hangs": hangs,
        "per_s": n / dt,
        "seconds": dt,
        "slowest_ms": slowest * 1e3,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inputs", type=int, default=10**6, help="inputs per parser (default 10^6)")
    ap.add_argument("--parser", action="append", choices=sorted(TARGETS), help="only these (repeatable)")
    ap.add_argument("--seed", type=int, default=1, help="random seed (a run is reproducible)")
    ap.add_argument("--hang-seconds", type=float, default=5.0, help="an input slower than this is a hang")
    ap.add_argument("--mem-limit-mb", type=int, default=4096, help="address-space limit (0: none)")
    ap.add_argument("--crash-dir", type=Path, default=None, help="save crashing / hanging inputs here")
    args = ap.parse_args()
    if args.mem_limit_mb:
        lim = args.mem_limit_mb << 20
        resource.setrlimit(resource.RLIMIT_AS, (lim, lim))
    if args.crash_dir is not None:
        args.crash_dir.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGALRM, _alarm)
    print(f"{'parser':<10} {'inputs':>9} {'TraceError':>10} {'crashes':>7} {'hangs':>5} {'inputs/s':>9} "
          f"{'slowest':>9}")  # fmt: skip
    total = bad = 0
    for name in args.parser or list(TARGETS):
        r = fuzz(name, args.inputs, args.seed, args.hang_seconds, args.crash_dir)
        total += int(r["inputs"])
        bad += int(r["crashes"] + r["hangs"])
        print(
            f"{name:<10} {int(r['inputs']):>9} {int(r['trace_errors']):>10} {int(r['crashes']):>7} "
            f"{int(r['hangs']):>5} {r['per_s']:>9.0f} {r['slowest_ms']:>7.1f}ms",
            flush=True,
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"total inputs {total}; crashes + hangs {bad}; peak RSS {peak:.0f} MiB")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
