"""`hvtrace run --backend qemu` end to end (AMD SVM platform under QEMU TCG)."""

from __future__ import annotations

import re

import pytest

from hvtrace.abi import HvStatus
from hvtrace.launch.qemu import free_tcp_port
from tests.integration.conftest import RunFn, assert_clean

pytestmark = [pytest.mark.slow, pytest.mark.qemu]

TOTAL_RE = re.compile(r"^total RAM: (\d+) MiB usable \((\d+) KiB\), top of RAM (0x[0-9a-f]+)$", re.MULTILINE)
MAP_RE = re.compile(r"^\s+\[mem (0x[0-9a-f]+)-(0x[0-9a-f]+)\] (\w+)", re.MULTILINE)


def test_boots_four_cpus_and_passes(hvtrace_run: RunFn) -> None:
    run = hvtrace_run("run", "--backend", "qemu", "--cpus", "4", "--memory", "256M")
    assert run.returncode == 0, run.describe()
    out = run.stdout
    assert re.search(r"^memory map \(\d+ ranges\):$", out, re.MULTILINE), run.describe()
    total = TOTAL_RE.search(out)
    assert total is not None, run.describe()
    # QEMU was given 256 MiB (-m); the legacy area below 1 MiB (640 KiB-1 MiB, the EBDA) and the
    # firmware's tables at the top are not usable: less than 1 MiB of the 256 is lost, and the map's
    # usable ranges add up to the total.
    kib = int(total.group(2))
    assert 256 * 1024 - 1024 < kib < 256 * 1024, total.group(0)
    assert int(total.group(1)) == kib // 1024
    usable = [(int(a, 16), int(b, 16)) for a, b, kind in MAP_RE.findall(out) if kind == "usable"]
    assert sum(b + 1 - a for a, b in usable) == kib * 1024, usable
    assert int(total.group(3), 16) == max(b + 1 for _, b in usable)
    assert re.search(r"^4 CPUs online$", out, re.MULTILINE), run.describe()
    assert "HVTRACE STATUS code=0 result=pass reason=ok" in out
    # Printed before boot: shared RAM file, gdb port, QMP socket (one line each).
    assert run.ram_file is not None
    assert run.ram_file.name.startswith("hvtrace-")
    assert re.search(r"^hvtrace: gdb port \d+ ", out, re.MULTILINE)
    assert run.qmp_socket is not None
    assert run.qmp_socket.name == "qmp.sock"
    # QEMU's own exit status agreed with the status line: no mismatch note.
    assert "does not match" not in run.stderr
    assert_clean(run)


def test_injected_ud_on_cpu1_reports_the_exception(hvtrace_run: RunFn) -> None:
    run = hvtrace_run("run", "--backend", "qemu", "--cpus", "2", "--inject-fault", "ud", "--fault-cpu", "1")
    assert run.returncode == HvStatus.EXCEPTION, run.describe()
    assert run.returncode == 2
    assert re.search(r"FATAL: CPU 1 \(APIC \d+\) exception vector 6 #UD .* RIP=0x[0-9a-f]+", run.stdout), (
        run.describe()
    )
    assert "HVTRACE STATUS code=2 result=fail reason=exception" in run.stdout
    assert "hypervisor status 2 (EXCEPTION)" in run.stderr
    assert_clean(run)


@pytest.mark.parametrize(("kind", "vector", "name"), [("gp", 13, "#GP"), ("pf", 14, "#PF"), ("de", 0, "#DE")])
def test_other_injected_faults(hvtrace_run: RunFn, kind: str, vector: int, name: str) -> None:
    run = hvtrace_run("run", "--cpus", "2", "--inject-fault", kind, "--fault-cpu", "0")
    assert run.returncode == 2, run.describe()
    assert re.search(rf"FATAL: CPU 0 \(APIC \d+\) exception vector {vector} {name} ", run.stdout), (
        run.describe()
    )
    assert_clean(run)


def test_fixed_gdb_port_is_used(hvtrace_run: RunFn) -> None:
    port = free_tcp_port()
    run = hvtrace_run("run", "--gdb", str(port))
    assert run.returncode == 0, run.describe()
    assert f"hvtrace: gdb port {port} " in run.stdout
    assert_clean(run)


def test_bad_kernel_option_is_the_hypervisors_status(hvtrace_run: RunFn) -> None:
    run = hvtrace_run("run", "--append", "no_such_option=1")
    assert run.returncode == HvStatus.BAD_CMDLINE, run.describe()
    assert "reason=bad_cmdline" in run.stdout
    assert_clean(run)
