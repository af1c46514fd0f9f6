"""Exit-break conditions, ignore counts and tracepoints evaluated by the hypervisor, and breaks that
belong to the gdb session that armed them (real QEMU, SVM, CPUID storm on 2 CPUs; real gdb over MI).

The storm runs CPUID leaves 0-7 on both CPUs; CPUID.1:EBX[31:24] is the CPU's initial APIC ID (0, 1),
so ``leaf == 1 && rbx >= 0x1000000`` holds on CPU 1 only, and ``rbx >= 0x8000000`` never holds.
The hypervisor's table is read from the session's RAM file, not through gdb.
"""

from __future__ import annotations

import ctypes
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from hvtrace import abi, paths
from hvtrace.gdbmi import Gdb, GdbError
from hvtrace.launch.qemu import QemuSession
from hvtrace.trace.discovery import discover
from hvtrace.trace.sources import SharedRamSource
from tests.integration.conftest import gdb_on, hvtrace_argv

pytestmark = [pytest.mark.slow, pytest.mark.qemu]
HITS_RE = re.compile(r"^\s+(\d+): (.*)  hits (\d+)$", re.MULTILINE)


def storm_with_gdb(*setup: str) -> Iterator[tuple[QemuSession, Gdb]]:
    """A 2-CPU storm and gdb on it, after the gdb commands ``setup`` (a module fixture's body)."""
    session = QemuSession(cpus=2, memory_mb=64, cmdline="storm=1", timeout=300)
    with gdb_on(session, "storm:") as gdb:
        for command in ("set pagination off", *setup):
            gdb.ok(command)
        yield session, gdb


@pytest.fixture(scope="module")
def live() -> Iterator[tuple[QemuSession, Gdb]]:
    yield from storm_with_gdb()


def table_in_ram(ram: Path | None) -> abi.HvBreakConfig:
    """The hypervisor's break table as the session's RAM file holds it (independent of gdb)."""
    assert ram is not None
    src = SharedRamSource(ram, writable=False)
    try:
        d = discover(src, elf=paths.image_path())
        data = src.read(int(d.header.break_config), ctypes.sizeof(abi.HvBreakConfig))
    finally:
        src.close()
    return abi.HvBreakConfig.from_buffer_copy(data)


def hits(gdb: Gdb) -> dict[int, tuple[str, int]]:
    return {int(i): (what, int(n)) for i, what, n in HITS_RE.findall(gdb.ok("hv-break list"))}


def stop_at(gdb: Gdb, index: int) -> str:
    """Continue until break ``index`` stops the VM (an all-stop hit of a deleted break, pending from an
    earlier test, is passed over); the stop's text."""
    for _ in range(5):
        text = gdb.continue_until_stop().text
        if f"hv-break {index} hit on CPU" in text:
            return text
    raise AssertionError(f"break {index} never stopped the VM: {text}")


def test_condition_stops_only_on_the_matching_leaf_and_register(live: tuple[QemuSession, Gdb]) -> None:
    _, gdb = live
    gdb.ok("hv-break delete all")
    armed = gdb.ok("hv-break cpuid if leaf == 1 && rbx >= 0x1000000")
    assert "hv-break 0: cpuid if arg0 == 0x1 && rbx >= 0x1000000" in armed, armed
    for _ in range(3):
        text = stop_at(gdb, 0)
        assert "hv-break 0 hit on CPU 1: CPUID" in text, text
        assert re.search(r"leaf 0x1 subleaf", text), text
        rbx = re.search(r"RBX (0x[0-9a-f]{16})", text)
        assert rbx is not None, text
        assert int(rbx.group(1), 16) >> 24 == 1, text  # APIC ID 1: CPU 1's own CPUID.1 output
    assert hits(gdb)[0][1] >= 3


def test_never_matching_condition_never_stops_and_a_tracepoint_counts(live: tuple[QemuSession, Gdb]) -> None:
    _, gdb = live
    gdb.ok("hv-break delete all")
    gdb.ok("hv-break cpuid if leaf == 1 && rbx >= 0x8000000")
    assert "hv-break 1: trace cpuid arg0=0x3" in gdb.ok("hv-trace-point cpuid --leaf 3")
    stop = gdb.run_for(2.0)  # only our interrupt stops it
    assert "hv_break_hit" not in [
        r["payload"].get("frame", {}).get("func")
        for r in stop.records
        if r["type"] == "notify" and r["message"] == "stopped"
    ]
    counted = hits(gdb)
    assert counted[0] == ("cpuid if arg0 == 0x1 && rbx >= 0x8000000", 0), counted
    assert counted[1][1] > 100, counted  # leaf 3 on both CPUs, counted without a single stop
    more = gdb.run_for(1.0)
    assert "hv-break 1 hit" not in more.text
    assert hits(gdb)[1][1] > counted[1][1]


def test_ignore_count_skips_the_first_matches(live: tuple[QemuSession, Gdb]) -> None:
    _, gdb = live
    gdb.ok("hv-break delete all")
    gdb.ok("hv-break cpuid --leaf 2 --cpu 0 --ignore 5")
    stop_at(gdb, 0)
    assert hits(gdb)[0] == ("cpuid cpu=0 arg0=0x2 ignore=5", 6)


def test_conditions_the_hypervisor_cannot_evaluate_are_refused(live: tuple[QemuSession, Gdb]) -> None:
    _, gdb = live
    for expr, why in (("rax == 1 || rcx == 2", "'||'"), ("rsp == 0", "RSP"), ("rax + 1 == 2", "is not")):
        with pytest.raises(GdbError, match=rf"hv-break: cannot evaluate 'if {re.escape(expr)}' .*{why}"):
            gdb.ok(f"hv-break cpuid if {expr}")


def test_detach_deletes_the_sessions_breaks(live: tuple[QemuSession, Gdb]) -> None:
    session, gdb = live
    gdb.ok("hv-break delete all")
    gdb.ok("hv-break cpuid --leaf 1")
    gdb.ok("hv-trace-point msr_write")
    assert table_in_ram(session.ram_path).armed == 2
    out = gdb.ok("detach")
    assert "deleted 2 exit breaks of this session" in out, out
    cfg = table_in_ram(session.ram_path)
    assert cfg.armed == 0
    assert not any(e.enabled for e in cfg.entry)
    gdb.ok(f"target remote 127.0.0.1:{session.gdb_port}")  # the next test's gdb session


def test_batch_gdb_exit_deletes_its_breaks(live: tuple[QemuSession, Gdb]) -> None:
    session, gdb = live
    gdb.ok("detach")  # the gdbstub takes one client
    try:
        r = subprocess.run(
            hvtrace_argv("gdb", "--port", str(session.gdb_port), "-nx", "-batch",
                         "-ex", "hv-break cpuid --leaf 5", "-ex", "hv-break list"),
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        assert "0: cpuid arg0=0x5  hits 0" in r.stdout
        assert "deleted 1 exit break of this session" in r.stdout
        cfg = table_in_ram(session.ram_path)
        assert cfg.armed == 0
        assert not any(e.enabled for e in cfg.entry)
    finally:
        gdb.ok(f"target remote 127.0.0.1:{session.gdb_port}")
