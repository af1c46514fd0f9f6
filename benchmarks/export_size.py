"""`hvtrace export` output size and time per format for a 1 M-record capture, one run each.

Writes the file with the project's TraceWriter (benchmarks/synthetic_trace.py: a 2-CPU storm shape), then
exports it as perfetto-proto, perfetto-json, csv and parquet (a dataset directory) through the CLI.
No asserts: numbers for the notes (the goal: the Perfetto protobuf of 1 M records under 25 MB).

    python benchmarks/export_size.py [--records N] [--formats perfetto-proto,parquet]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from synthetic_trace import write_in_child  # benchmarks/: the script's own directory

HVTRACE = Path(sys.executable).parent / "hvtrace"
FORMATS = "perfetto-proto,perfetto-json,csv,parquet"


def size(path: Path) -> int:
    if path.is_dir():  # the Parquet dataset
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--formats", default=FORMATS)
    args = ap.parse_args()
    n = args.records
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "capture.hvt"
        write_in_child(src, n)
        print(f"{'trace file (.hvt)':<16} {size(src) / 1e6:8.2f} MB  {size(src) / n:6.1f} B/record")
        for fmt in args.formats.split(","):
            out = Path(tmp) / f"out.{fmt}"
            t = time.perf_counter()
            subprocess.run([str(HVTRACE), "export", str(src), "--format", fmt, "-o", str(out)],
                           capture_output=True, check=True)  # fmt: skip
            dt = time.perf_counter() - t
            print(f"{fmt:<16} {size(out) / 1e6:8.2f} MB  {size(out) / n:6.1f} B/record  {dt:6.1f} s")


if __name__ == "__main__":
    main()
