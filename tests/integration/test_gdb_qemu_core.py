"""Post mortem from QEMU: `dump-guest-memory` (QMP) written while the storm runs, opened by `hvtrace gdb
--core`: the hv-* commands read the rings, the discovery header and the NPT from the core."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.integration.conftest import dump_storm_core, hvtrace_argv

pytestmark = [pytest.mark.slow, pytest.mark.qemu]


def test_qemu_dump_guest_memory_core_in_gdb(tmp_path: Path) -> None:
    core = dump_storm_core(tmp_path / "guest.core")
    r = subprocess.run(
        hvtrace_argv("gdb", "--core", str(core), "--batch",
                     "--ex", "hv-cpus", "--ex", "hv-ept 0x100000", "--ex", "hv-exits -n 2"),
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert re.search(r"^CPU 0 SVM launched ring \d+/16384 exits \d+", r.stdout, re.MULTILINE), r.stdout
    assert "GPA 0x100000 -> HPA 0x100000  rwx WB" in r.stdout
    assert (
        len(re.findall(r"^CPU0 #\d+ CPUID\(0x72\)/CPUID rip=0x[0-9a-f]+ leaf 0x", r.stdout, re.MULTILINE))
        == 2
    )
