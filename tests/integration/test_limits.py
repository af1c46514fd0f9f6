"""Edges of the foundation: the CPU-count range the hypervisor promises, and page-pool exhaustion."""

from __future__ import annotations

import ctypes
import re

import pytest

from hvtrace.abi import HV_RECORD_SIZE, HvRing, HvStatus
from tests.integration.conftest import RunFn, assert_clean

pytestmark = [pytest.mark.slow]


@pytest.mark.qemu
@pytest.mark.parametrize("cpus", [1, 8])
def test_every_cpu_comes_online(hvtrace_run: RunFn, cpus: int) -> None:
    run = hvtrace_run("run", "--backend", "qemu", "--cpus", str(cpus))
    assert run.returncode == 0, run.describe()
    assert re.search(rf"^ACPI: .*: {cpus} enabled processors", run.stdout, re.MULTILINE), run.describe()
    assert re.search(rf"^{cpus} CPUs online$", run.stdout, re.MULTILINE)
    for cpu in range(1, cpus):
        assert re.search(rf"^CPU {cpu} \(APIC \d+\) online$", run.stdout, re.MULTILINE)
    assert_clean(run)


@pytest.mark.bochs
def test_pool_exhaustion_is_loud(hvtrace_run: RunFn) -> None:
    # A 2^20-record ring (80-byte ABI v2 records: 80 MiB) + its 192-byte header = 20481 pages: more than
    # a 32 MiB machine has.
    pages = (ctypes.sizeof(HvRing) + (1 << 20) * HV_RECORD_SIZE + 4095) // 4096
    assert pages == 20481
    run = hvtrace_run("run", "--backend", "bochs", "--memory", "32M", "--append", "ring=1048576")
    assert run.returncode == HvStatus.POOL_EXHAUSTED, run.describe()
    assert re.search(rf"FATAL: page pool exhausted: exit ring needs {pages} pages, \d+ left", run.stdout), (
        run.describe()
    )
    assert "HVTRACE STATUS code=4 result=fail reason=pool_exhausted" in run.stdout
    assert_clean(run)
