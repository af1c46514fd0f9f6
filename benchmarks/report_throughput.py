"""`hvtrace report` records/s and peak RSS on 5 M and 50 M-record files, with the chunk summaries (format 3)
and without (--no-summaries: every chunk decoded), vs `cat`; the writer's records/s with and without
summaries; the summaries' share of the file. One run each (best of ROUNDS for the small file); numbers
for the notes, no asserts.

Usage: .venv/bin/python -m benchmarks.report_throughput [--sizes 5,50] [--dir DIR] [--jobs N]
       [--real FILE...] [--history] [--before REV]
The files (benchmarks/report_synthetic.py: 4 CPUs, a realistic reason mix, monotonic TSCs, written with
the real TraceWriter, zstd, columnar chunks with summaries) are kept in --dir when given, so a second
run reuses them. --real: also print the summaries' share of these (real) capture files.

Rates are per wall second and per CPU second (user + system of every process of the run: on a shared
machine the CPU seconds say more than the wall time). "as CLI" runs `python -m hvtrace report` (the
interpreter's start and the imports included); "in process" times TraceFile.open + build_report in a
fresh interpreter after its imports. Peak RSS is the largest resident size of any process of the
report (the main one or a worker), from getrusage(RUSAGE_CHILDREN) of a wrapper that runs only that
command (in process: of that interpreter and its workers).

Writer: records/s (per CPU second) of TraceWriter.add + close over the same synthetic records (at most
5 M), with summaries and without (format 2 chunks), generation not counted.

--history also runs the earlier reports: BEFORE_REV's streaming report (main before the columnar
chunk layout; --before REV for another) on a classic (format 1) copy of every file, and OLD_REV's
(before the streaming report: the whole record array in memory, ~200 bytes a record) on a zlib copy of
the smallest file, with the new report on the same copies.
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
from hvtrace.trace.fileformat import CHUNK_HEADER, FLAG_SUMMARY, FLAG_ZLIB, FLAG_ZSTD
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
    "kw = {} if sys.argv[3] == '1' else {'summaries': False}  # older checkouts: no such argument\n"
    "build_report(TraceFile.open(sys.argv[1]), jobs=int(sys.argv[2]) or None, **kw)\n"
    "k, me = resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF)\n"
    "print(time.perf_counter() - t, time.process_time() - c + k.ru_utime + k.ru_stime,"
    " max(k.ru_maxrss, me.ru_maxrss))\n"
)


def in_process(
    path: Path, jobs: int | None, cwd: Path | None = None, summaries: bool = True
) -> tuple[float, float, int]:
    """The report's own work (open + build_report), timed inside a fresh interpreter after its imports
    (``cwd``: an older checkout, which ignores the summaries argument)."""
    argv = [sys.executable, "-c", _IN_PROCESS, str(path), str(jobs or 0), "1" if summaries else "0"]
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


def summary_share(path: Path) -> tuple[int, int, int]:
    """Bytes of the chunk summaries (prefix and frame) in a trace file, the file's size, and the
    chunks holding records."""
    offsets = TraceFile.open(path).index["offset"].tolist()
    total, chunks = 0, 0
    with path.open("rb") as fh:  # headers only: this process stays small (its children's RSS is measured)
        for off in offsets:
            fh.seek(off)
            head = fh.read(CHUNK_HEADER.size + 4)
            flags, count = CHUNK_HEADER.unpack_from(head)[2:4]
            chunks += count > 0
            if flags & FLAG_SUMMARY:
                total += 8 + int.from_bytes(head[CHUNK_HEADER.size :], "little")
    return total, path.stat().st_size, chunks


def print_share(path: Path, n: int) -> None:
    size, whole, chunks = summary_share(path)
    print(
        f"  summaries: {size / 1e6:.2f} MB = {100 * size / whole:.2f} % of the file "
        f"({chunks} chunks, {size / max(chunks, 1):,.0f} bytes each, {size / max(n, 1):.3f} bytes/record)"
    )


_WRITER = """
import sys, time
from pathlib import Path
import numpy as np
from benchmarks.report_synthetic import CPUS, SLICE, TSC_HZ, _slice
from hvtrace.trace.writer import TraceWriter
n, out = int(sys.argv[1]), Path(sys.argv[2])
for summaries in (False, True):
    rng, tsc0 = np.random.default_rng(1), np.full(CPUS, 10**9, dtype=np.uint64)
    cpu = 0.0
    with TraceWriter(out, {"vendor": 1, "cpus": CPUS, "tsc_hz": TSC_HZ}, summaries=summaries) as w:
        for start in range(0, n, SLICE):
            recs = _slice(rng, min(SLICE, n - start), start, tsc0)
            c = time.process_time()
            w.add(recs)
            cpu += time.process_time() - c
        c = time.process_time()
    cpu += time.process_time() - c  # close: the last chunks, the index
    size = out.stat().st_size
    what = "with summaries (format 3)" if summaries else "without (format 2)"
    print(f"  writer {what:<26} {cpu:6.2f} CPU s {n / cpu / 1e6:6.2f} M rec/s  {size / 1e6:6.1f} MB")
    out.unlink()
"""


def writer_rate(n: int, where: Path) -> None:
    """TraceWriter's records per CPU second with and without summaries (a child interpreter)."""
    code = [sys.executable, "-c", _WRITER, str(n), str(where / "writer.hvt")]
    subprocess.run(code, check=True, cwd=paths.repo_root())


def line(what: str, n: int, measured: tuple[float, float, int], t_cat: float) -> None:
    t, cpu, rss = measured
    rate = f"{n / t / 1e6:6.2f} M rec/s ({n / cpu / 1e6:6.2f} per CPU s)"
    print(f"  {what:<34} {t:7.2f} s {rate}  peak RSS {rss / 1024:6.1f} MB  {t / t_cat:5.1f}x cat")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="5,50", help="file sizes in millions of records (default 5,50)")
    ap.add_argument("--dir", type=Path, help="keep / reuse the generated files here")
    ap.add_argument("--jobs", type=int, help="--jobs for hvtrace report (default: its own, the idle CPUs)")
    ap.add_argument("--real", type=Path, nargs="*", default=[], help="real captures: their summaries' share")
    ap.add_argument("--history", action="store_true", help="also run the earlier reports (slow)")
    ap.add_argument(
        "--before", default=BEFORE_REV, help=f"with --history: the report before (default {BEFORE_REV})"
    )
    args = ap.parse_args()
    sizes = [int(float(s) * 1_000_000) for s in args.sizes.split(",")]
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (shared machine: wall times vary)")
    for real in args.real:
        n = TraceFile.open(real).record_count
        print(f"\n{real}: {n} records, {real.stat().st_size / 1e6:.1f} MB")
        print_share(real, n)
    jobs = ["--jobs", str(args.jobs)] if args.jobs else []
    report = [sys.executable, "-m", "hvtrace", "report", *jobs]
    with tempfile.TemporaryDirectory() as tmp:
        where = args.dir or Path(tmp)
        where.mkdir(parents=True, exist_ok=True)
        writer_rate(min(sizes), where)
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
            print_share(path, n)
            rounds = ROUNDS if n <= 10_000_000 else 1
            t_cat, _, _ = best(["sh", "-c", f"cat {path} > /dev/null"], rounds)
            print(f"  {'cat > /dev/null':<34} {t_cat:7.2f} s {n / t_cat / 1e6:7.2f} M rec/s")
            line("python -m hvtrace --help (startup)", n, best([*report[:3], "--help"], rounds), t_cat)
            line("as CLI: hvtrace report", n, best([*report, str(path)], rounds), t_cat)
            line("as CLI: --no-summaries", n, best([*report, "--no-summaries", str(path)], rounds), t_cat)
            for j in (1, 2):
                line(f"in process, summaries, jobs {j}", n, in_process(path, j), t_cat)
                line(f"in process, no summaries, jobs {j}", n, in_process(path, j, summaries=False), t_cat)
            if args.history:
                history(args, path, n=n, smallest=n == min(sizes), where=where, tmp=Path(tmp), report=report,
                        rounds=rounds, t_cat=t_cat)  # fmt: skip


def history(
    args: argparse.Namespace, path: Path, *, n: int, smallest: bool, where: Path, tmp: Path,
    report: list[str], rounds: int, t_cat: float,
) -> None:  # fmt: skip
    """The earlier reports on the copies they read (see the module's doc)."""
    before = old_checkout(Path(tmp, "before"), args.before)
    classic = where / f"{path.stem}-classic.hvt"
    if not classic.exists():
        copy_in_child(path, classic, FLAG_ZSTD)
    print(f"  classic copy (format 1, readable by {args.before}): {classic.stat().st_size / 1e6:.0f} MB")
    for j in (1, 2):
        line(f"before ({args.before}), classic, jobs {j}", n, in_process(classic, j, before), t_cat)
        line(f"new report, classic copy, jobs {j}", n, in_process(classic, j), t_cat)
    if not smallest:
        return
    old = old_checkout(Path(tmp, "old"))
    zpath = Path(tmp, "zlib.hvt")
    copy_in_child(path, zpath, FLAG_ZLIB)
    print(f"  zlib copy (readable by {OLD_REV}): {zpath.stat().st_size / 1e6:.0f} MB")
    old_cmd = [sys.executable, "-c", "import sys; from hvtrace.cli import main; sys.exit(main())"]
    line(f"previous report ({OLD_REV}), zlib", n, best([*old_cmd, "report", str(zpath)], 1, cwd=old), t_cat)
    line("hvtrace report, zlib copy", n, best([*report, str(zpath)], rounds), t_cat)


if __name__ == "__main__":
    main()
