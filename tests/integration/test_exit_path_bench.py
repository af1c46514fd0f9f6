"""benchmarks/exit_path.py in its quick mode (issue 18): the single-stepping count of hypervisor
instructions per exit round trip produces a number for every exit kind it measures. Only that it
produces numbers: the counts themselves are for the notes (benchmarks never assert speed)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from hvtrace import paths

#: workload and exit kind -> what the benchmark labels it (benchmarks/exit_path.py KINDS, WORKLOADS)
EXPECTED = {"storm CPUID", "storm RDMSR", "mbtest CPUID", "mbtest RDMSR", "mbtest IN", "mbtest NPF"}


@pytest.mark.slow
@pytest.mark.qemu
def test_exit_path_quick_counts_every_exit_kind() -> None:
    script = paths.repo_root() / "benchmarks" / "exit_path.py"
    argv = [sys.executable, str(script), "--quick", "--json"]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=280, check=False)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    counts = json.loads(r.stdout.strip().splitlines()[-1])["trace on"]
    assert set(counts) == EXPECTED, counts
    assert all(isinstance(n, int) and n > 0 for n in counts.values()), counts
