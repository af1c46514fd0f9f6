"""Post mortem from QEMU: `dump-guest-memory` (QMP) written while the storm runs, opened by `hvtrace gdb
--core`: the hv-* commands read the rings, the discovery header and the NPT from the core."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

from hvtrace.launch.qemu import QemuSession
from hvtrace.trace.sources import qmp_dump_guest_memory
from tests.integration.conftest import hvtrace_argv

pytestmark = [pytest.mark.slow, pytest.mark.qemu]


def test_qemu_dump_guest_memory_core_in_gdb(tmp_path: Path) -> None:
    core = tmp_path / "guest.core"
    with QemuSession(cpus=1, memory_mb=64, cmdline="storm=1", timeout=60) as s:
        deadline = time.monotonic() + 30
        while not any(line.startswith("storm:") for line in s.lines):
            assert time.monotonic() < deadline, s.lines[-5:]
            time.sleep(0.05)
        assert s.qmp_socket is not None
        qmp_dump_guest_memory(s.qmp_socket, core)
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
