"""`hvtrace report` records/s and peak RSS on 5 M and 50 M-record v2 files, vs `cat` and vs the previous
version's report. One run each (best of ROUNDS for the small file); numbers for the notes, no asserts.

Usage: .venv/bin/python -m benchmarks.report_throughput [--sizes 5,50] [--dir DIR] [--jobs N] [--before REV]
The files (benchmarks/report_synthetic.py: 4 CPUs, a realistic reason mix, monotonic TSCs, written with
the real TraceWriter, zstd, columnar chunks) are kept in --dir when given, so a second run reuses them.

Before: the streaming report at BEFORE_REV (main before the columnar chunk layout and the faster
aggregation; --before REV for another) runs, extracted like the previous version below, on a classic
(format 1, byte-shuffled zstd) copy of every file, which is all it reads; the new report runs on that
copy too, to separate the layout's share from the aggregation's.

Files are written by child processes, so this one stays small and the peak RSS of the processes it
starts is theirs.

Previous version: the hvtrace package at OLD_REV (the commit before the streaming report) is extracted
with `git archive` into a temporary directory and run on a zlib copy of the smallest file (it reads
only zlib chunks and holds the whole record array plus sorted copies, ~200 bytes a record: it is not
run on the 50 M file, which would need ~10 GB). The new report is also run on that zlib copy, to
separate the codec's share from the streaming's.

Rates are per wall second and per CPU second (user + system of every process of the run: on a shared
machine the CPU seconds say more than the wall time). Peak RSS is the largest resident size of any
process of the report (the main one or a worker; each worker reads its own chunks), from
getrusage(RUSAGE_CHILDREN) of a wrapper that runs only that command.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hvtrace import paths
from hvtrace.trace.fileformat import FLAG_ZLIB, FLAG_ZSTD
from hvtrace.trace.tracefile import TraceFile
from hvtrace.trace.writer import TraceWriter

OLD_REV = "9f85e2f"  # main before the streaming report (hvtrace report held every record in memory)
BEFORE_REV = "0fd4704"  # main before the columnar chunk layout (the streaming report at 2-4 M records/s)
ROUNDS = 3
_WRAP = (
    "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL); "
    "u = resource.getrusage(resource.RUSAGE_CHILDREN); "
    "print(u.ru_maxrss, u.ru_utime + u.ru_stime); sys.exit(r.returncode)"
)


def run(argv: list[str], cwd: Path | None = None) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds (every process of it) and peak RSS (KiB) of one run of ``argv``."""
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", _WRAP, *argv], capture_output=True, text=True, cwd=cwd, check=True
    )
    rss, cpu = out.stdout.split()[-2:]
    return time.perf_counter() - t0, float(cpu), int(rss)


def best(argv: list[str], rounds: int, cwd: Path | None = None) -> tuple[float, float, int]:
    runs = [run(argv, cwd) for _ in range(rounds)]
    return min(t for t, _, _ in runs), min(c for _, c, _ in runs), max(r for _, _, r in runs)


_IN_PROCESS = (
    "import resource, sys, time\n"
    "from hvtrace.trace.report import build_report\n"
    "from hvtrace.trace.tracefile import TraceFile\n"
    "t, c = time.perf_counter(), time.process_time()\n"
    "build_report(TraceFile.open(sys.argv[1]), jobs=int(sys.argv[2]) or None)\n"
    "k, me = resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF)\n"
    "print(time.perf_counter() - t, time.process_time() - c + k.ru_utime + k.ru_stime,"
    " max(k.ru_maxrss, me.ru_maxrss))\n"
)


def in_process(path: Path, jobs: int | None, cwd: Path | None = None) -> tuple[float, float, int]:
    """The report's own work (open + build_report), timed inside a fresh interpreter after its imports."""
    argv = [sys.executable, "-c", _IN_PROCESS, str(path), str(jobs or 0)]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, cwd=cwd).stdout
    wall, cpu, rss = out.split()
    return float(wall), float(cpu), int(rss)


def old_checkout(dest: Path, rev: str = OLD_REV) -> Path:
    """A previous version's hvtrace package, extracted from git at ``rev`` (run with it as the
    working directory: `python -c` puts that first on sys.path, before the installed package)."""
    archive = subprocess.run(
        ["git", "-C", str(paths.repo_root()), "archive", rev, "hvtrace"], check=True, capture_output=True
    ).stdout
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def in_child(code: str) -> None:
    """Run ``code`` in a child interpreter: this process stays small, and the peak RSS its children
    report is theirs (a forked child starts with its parent's peak, which exec keeps)."""
    subprocess.run([sys.executable, "-c", code], check=True, cwd=paths.repo_root())


def copy_in_child(src: Path, dest: Path, codec: int) -> None:
    in_child(
        "from pathlib import Path; from benchmarks.report_throughput import classic_copy; "
        f"classic_copy(Path({str(src)!r}), Path({str(dest)!r}), {codec})"
    )


def classic_copy(src: Path, dest: Path, codec: int = FLAG_ZLIB) -> Path:
    """A format 1 copy (byte-shuffled chunks, what older versions read) of ``src``."""
    tf = TraceFile.open(src)
    with TraceWriter(dest, dict(tf.meta), codec=codec, columns=False) as w:
        for i in range(len(tf.index)):
            w.add(tf.read_chunk(i))
            tf.release()
    return dest


def line(what: str, n: int, measured: tuple[float, float, int], t_cat: float) -> None:
    t, cpu, rss = measured
    rate = f"{n / t / 1e6:6.2f} M rec/s ({n / cpu / 1e6:6.2f} per CPU s)"
    print(f"  {what:<34} {t:7.2f} s {rate}  peak RSS {rss / 1024:6.1f} MB  {t / t_cat:5.1f}x cat")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="5,50", help="file sizes in millions of records (default 5,50)")
    ap.add_argument("--dir", type=Path, help="keep / reuse the generated files here")
    ap.add_argument("--jobs", type=int, help="--jobs for hvtrace report (default: its own, the CPUs)")
    ap.add_argument("--before", default=BEFORE_REV, help=f"the report to compare with (default {BEFORE_REV})")
    args = ap.parse_args()
    sizes = [int(float(s) * 1_000_000) for s in args.sizes.split(",")]
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (shared machine: wall times vary)")
    jobs = ["--jobs", str(args.jobs)] if args.jobs else []
    report = [sys.executable, "-m", "hvtrace", "report", *jobs]
    with tempfile.TemporaryDirectory() as tmp:
        where = args.dir or Path(tmp)
        where.mkdir(parents=True, exist_ok=True)
        for n in sizes:
            path = where / f"synthetic-{n // 1_000_000}M.hvt"
            if not path.exists():
                t0 = time.perf_counter()
                in_child(
                    f"from benchmarks.report_synthetic import Path, write; write(Path({str(path)!r}), {n})"
                )
                print(f"wrote {path.name} in {time.perf_counter() - t0:.0f} s")
            size = path.stat().st_size
            print(f"\n{path.name}: {n} records, {size / 1e6:.0f} MB ({size / n:.1f} bytes/record)")
            rounds = ROUNDS if n <= 10_000_000 else 1
            t_cat, _, _ = best(["sh", "-c", f"cat {path} > /dev/null"], rounds)
            print(f"  {'cat > /dev/null':<34} {t_cat:8.2f} s {n / t_cat / 1e6:7.2f} M rec/s")
            line("python -m hvtrace --help (startup)", n, best([*report[:3], "--help"], rounds), t_cat)
            line("hvtrace report", n, best([*report, str(path)], rounds), t_cat)
            for j in ("1", "2"):
                line(f"hvtrace report --jobs {j}", n, best([*report, "--jobs", j, str(path)], rounds), t_cat)
            for j in (1, 2):
                line(f"in process, no startup, jobs {j}", n, in_process(path, j), t_cat)
            before = old_checkout(Path(tmp, "before"), args.before)
            classic = where / f"{path.stem}-classic.hvt"
            if not classic.exists():
                copy_in_child(path, classic, FLAG_ZSTD)
            print(
                f"  classic copy (format 1, readable by {args.before}): {classic.stat().st_size / 1e6:.0f} MB"
            )
            for j in (1, 2):
                line(f"before ({args.before}), classic, jobs {j}", n, in_process(classic, j, before), t_cat)
                line(f"new report, classic copy, jobs {j}", n, in_process(classic, j), t_cat)
            if n != min(sizes):
                continue
            old = old_checkout(Path(tmp, "old"))
            zpath = Path(tmp, "zlib.hvt")
            copy_in_child(path, zpath, FLAG_ZLIB)
            print(f"  zlib copy (readable by {OLD_REV}): {zpath.stat().st_size / 1e6:.0f} MB")
            old_cmd = [sys.executable, "-c", "import sys; from hvtrace.cli import main; sys.exit(main())"]
            line(
                f"previous report ({OLD_REV}), zlib",
                n,
                best([*old_cmd, "report", str(zpath)], 1, cwd=old),
                t_cat,
            )
            line("hvtrace report, zlib copy", n, best([*report, str(zpath)], rounds), t_cat)


if __name__ == "__main__":
    main()
