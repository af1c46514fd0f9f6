"""`hvtrace query` time for the README's three example queries on a 5 M-record trace file, one run each.

Writes the file with the project's TraceWriter (benchmarks/synthetic_trace.py: a 2-CPU storm shape), then
runs `hvtrace query "..." FILE --format csv` for each README query as a subprocess and prints its wall
time, records/s and the peak RSS of the query processes. No asserts: numbers for the notes.

    python benchmarks/query_time.py [--records N]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from synthetic_trace import write_in_child  # benchmarks/: the script's own directory

ROOT = Path(__file__).resolve().parent.parent

QUERY = re.compile(r'^hvtrace query "(.*?)" storm\.hvt$', re.MULTILINE | re.DOTALL)
HVTRACE = Path(sys.executable).parent / "hvtrace"


def readme_queries() -> list[tuple[str, str]]:
    """(title comment, SQL) of each example in the README's "SQL over traces" section."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### SQL over traces") :]
    section = section[: section.index("\n## ")]
    titles = re.findall(r"^# (.+)$", section, re.MULTILINE)
    return list(zip(titles, QUERY.findall(section), strict=True))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=5_000_000)
    n = ap.parse_args().records
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.hvt"
        t = time.perf_counter()
        write_in_child(path, n)
        print(f"wrote {n:,} records ({path.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - t:.1f} s")
        for title, sql in readme_queries():
            t = time.perf_counter()
            with tempfile.TemporaryFile() as out:
                argv = [str(HVTRACE), "query", sql, str(path), "--format", "csv"]
                proc = subprocess.Popen(argv, stdout=out)
                _, status, usage = os.wait4(proc.pid, 0)  # this query's own peak RSS
                proc.returncode = os.waitstatus_to_exitcode(status)
                dt = time.perf_counter() - t
                out.seek(0)
                rows = out.read().count(b"\n") - 1
            if proc.returncode:
                sys.exit(f"{title}: hvtrace query exited {proc.returncode}")
            rate, rss = f"{n / dt / 1e6:5.2f} M records/s", f"peak RSS {usage.ru_maxrss / 1024:4.0f} MiB"
            print(f"{title[:40]:<40} {dt:6.2f} s  {rate}  {rows:3d} rows  {rss}")


if __name__ == "__main__":
    main()
