"""A guest that tries to fool the host tools (issue 13 item 4), end to end on both back ends.

mbtest's ``forge`` option prints a fake PASS status line on COM1 (its console), probes and writes
COM2 (the hypervisor's private UART, hidden: it must read 0xFF), writes a well-formed record frame to
port 0xE9, plants a discovery header with a ring of forged records below 1 MiB, leaves an unterminated
line on COM1 and 0xE9 (which would swallow the start of a status line written after it), then
triple-faults.
The hypervisor's real status is code=1 reason=guest_triple_fault, and that is what `hvtrace run`
reports and exits with; capture reads the real rings (QEMU) or frames (Bochs), never a forged record.
With ``magic_break`` the guest also executes Bochs' magic breakpoint, which stops Bochs: never a pass.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hvtrace.abi import HV_DEBUG_EXIT_PORT, HV_DEBUG_EXIT_SIZE, HvExitKind, HvRecFlag
from hvtrace.exitcodes import ExitCode
from hvtrace.image import ensure_image
from hvtrace.launch import procs
from hvtrace.launch.guest import GuestSpec
from hvtrace.launch.qemu import QEMU, QemuSession
from hvtrace.launch.qemu_options import cpu_option
from hvtrace.relocation import region_from_console
from hvtrace.tools import require_tool
from hvtrace.trace.capture import Capture
from hvtrace.trace.discovery import discover
from hvtrace.trace.sources import SharedRamSource
from tests.integration.conftest import RunFn, assert_clean

pytestmark = [pytest.mark.slow]

FAKE = "HVTRACE STATUS code=0 result=pass reason=ok"
REAL = "HVTRACE STATUS code=1 result=fail reason=guest_triple_fault"
FORGE_HEADER = 0x80000  # mbtest.c FORGE_HEADER
FORGE_REASON = 0x7E57
FORGE_RIP = 0xF0F0F0F0
BACKENDS = [pytest.param("qemu", marks=pytest.mark.qemu), pytest.param("bochs", marks=pytest.mark.bochs)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_forging_guest_gets_the_hypervisors_real_status(
    hvtrace_run: RunFn, mbtest: Path, backend: str
) -> None:
    run = hvtrace_run("run", "--backend", backend, "--guest", str(mbtest), "--append", "mbtest forge")
    shown = run.describe()
    lines = run.stdout.splitlines()
    assert "mbtest: forge: triple fault" in lines, shown  # the guest did all it tries
    assert lines.count(FAKE) == 2, shown  # the guest's console: its COM1 line and its 0xE9 copy ...
    assert REAL in lines, shown  # ... and the hypervisor's own line, from its private channel
    assert run.returncode == 1, shown
    assert "hvtrace: hypervisor status 1 (FAIL) result=fail reason=guest_triple_fault" in run.stderr, shown
    assert "hypervisor status 0" not in run.output, shown
    # COM2 is absent for the guest, and what it wrote there reached no console (the count above)
    assert "mbtest: forge: COM2 LSR reads 0x000000ff (no device)" in lines, shown
    assert any("write of hidden port 0x2f8" in line and "dropped" in line for line in lines), shown
    assert_clean(run)


@pytest.mark.parametrize("backend", BACKENDS)
def test_capture_of_a_forging_guest_has_no_forged_record(mbtest: Path, backend: str) -> None:
    guest = GuestSpec(mbtest, None, "mbtest forge")
    with Capture.start(backend=backend, cpus=1, timeout=240, guest=guest) as cap:
        recs = cap.collect()
        hv_console = cap.hv_console
        assert FAKE in cap.console  # shown with the guest's output
        found = None
        if isinstance(cap.session, QemuSession):
            # Discovery without the ELF symbol: the scan of all RAM meets the planted header first.
            assert cap.session.ram_path is not None
            src = SharedRamSource(cap.session.ram_path, writable=False)
            try:
                found = discover(src)
            finally:
                src.close()
    assert REAL in hv_console, hv_console[-5:]
    assert FAKE not in hv_console, hv_console  # the private channel has the hypervisor's lines only
    assert len(recs) > 0
    assert not np.any(recs["reason"] == FORGE_REASON), "a forged record was read"
    assert not np.any(recs["rip"] == FORGE_RIP), "a forged record was read"
    # the guest's COM2 accesses were recorded as security-relevant I/O exits
    io = recs[recs["kind"] == int(HvExitKind.IO)]
    assert np.any(io["flags"] & int(HvRecFlag.SECURITY)), "no I/O exit carries the security flag"
    if found is not None:
        region = region_from_console(hv_console)
        assert region is not None
        assert found.paddr != FORGE_HEADER
        assert region[0] <= found.paddr < region[1], (hex(found.paddr), [hex(r) for r in region])


@pytest.mark.bochs
def test_a_guests_magic_breakpoint_is_no_pass_on_bochs(hvtrace_run: RunFn, mbtest: Path) -> None:
    append = "mbtest forge magic_break"
    run = hvtrace_run("run", "--backend", "bochs", "--guest", str(mbtest), "--append", append)
    shown = run.describe()
    assert "mbtest: forge: xchg bx,bx" in run.stdout, shown
    assert run.returncode == ExitCode.NO_STATUS, shown
    assert "magic breakpoint" in run.stderr, shown
    assert "hypervisor status 0" not in run.output, shown
    assert_clean(run)


@pytest.mark.qemu
def test_without_com2_the_console_falls_back_to_com1_and_says_so() -> None:
    """A machine with one UART: the hypervisor still talks (on COM1) and names the fallback."""
    qemu = require_tool(QEMU, "for the one-UART run")
    argv = [
        qemu, "-machine", "q35", "-accel", "tcg", "-cpu", cpu_option(None, "tcg"), "-m", "64M",
        "-kernel", str(ensure_image()), "-display", "none", "-monitor", "none",
        "-chardev", "stdio,id=console,signal=off", "-serial", "chardev:console", "-no-reboot",
        "-device", f"isa-debug-exit,iobase={HV_DEBUG_EXIT_PORT:#x},iosize={HV_DEBUG_EXIT_SIZE}",
    ]  # fmt: skip
    proc = procs.spawn(argv)
    try:
        out, _ = proc.communicate(timeout=120)
    finally:
        procs.stop(proc)
    lines = out.decode(errors="replace").splitlines()
    note = "console: no UART at COM2 (0x2f8): the hypervisor console shares COM1 with the guest"
    assert any(line.startswith(note) for line in lines), lines[:5]
    assert "HVTRACE STATUS code=0 result=pass reason=ok" in lines, lines[-5:]
    assert proc.returncode == 1  # isa-debug-exit: (0 << 1) | 1
