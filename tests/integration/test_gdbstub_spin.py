"""Ctrl-C through the resident gdb stub stops a guest that makes no exit of its own (issue 17).

mbtest's `spin_irq` mode computes with the PIT's interrupts on: the 8259's IRQ 0 reaches it through
LINT0 and it acknowledges each on port 0x20, none of which the hypervisor intercepts. Only the
hypervisor's own periodic exit can bring a CPU out of the guest for the stub to notice gdb's bytes
(the attach, then Ctrl-C): VT-x's preemption timer, and on SVM (no such timer) INTR, intercepted while
the stub is on and then let through to the guest until its VINTR exit (svm/halt.c). Before SVM
intercepted INTR for the stub, gdb could not even attach to this guest under QEMU.
The guest's tick count goes on across the stop and the resume: its interrupts still arrive.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from hvtrace.gdbmi import Gdb, Reply, stop_function
from hvtrace.launch.bochs import BochsSession
from hvtrace.launch.guest import GuestSpec
from hvtrace.launch.qemu import QemuSession
from tests.integration.conftest import wait_for
from tests.integration.test_gdbstub_live import attach

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
TICKS_RE = re.compile(r"mbtest: spin_irq: (\d+) ticks")
Spin = tuple[BochsSession | QemuSession, Gdb]


def ticks(session: BochsSession | QemuSession) -> int:
    """The guest's last printed interrupt count (0 before the first line)."""
    found = [int(m.group(1)) for line in session.guest_lines if (m := TICKS_RE.search(line))]
    return found[-1] if found else 0


@pytest.fixture(
    params=[pytest.param("bochs", marks=pytest.mark.bochs), pytest.param("qemu", marks=pytest.mark.qemu)],
)
def spin(request: pytest.FixtureRequest, mbtest: Path) -> Iterator[Spin]:
    guest = GuestSpec(mbtest, cmdline="mbtest spin_irq")
    session: BochsSession | QemuSession
    if request.param == "bochs":
        session = BochsSession(gdb_port=0, cpus=1, memory_mb=64, guest=guest, timeout=1800)
    else:
        session = QemuSession(gdb_port=0, gdb_stub="hv", cpus=1, memory_mb=64, guest=guest, timeout=1800)
    gdb: Gdb | None = None
    try:
        session.start()
        wait_for(lambda: ticks(session) >= 200, 600, "the guest's PIT interrupts")
        gdb = attach(session)  # gdb's first bytes are noticed only at a periodic exit
        assert "image at link address" in gdb.ok("hv-symbols", timeout=300)  # stops name their function
        yield session, gdb
    finally:
        if gdb is not None:
            gdb.close()
        session.close()


def sigint_stop(reply: Reply) -> None:
    """Check that the reply's stop is gdb's interrupt (SIGINT), in the hypervisor's stub."""
    record = reply.stop()
    assert record is not None, reply.records
    payload = record["payload"]
    assert payload.get("signal-name") == "SIGINT", payload
    assert stop_function(record) == "gdbstub_break_insn", payload  # the int3 of the CPU that read gdb's byte


def test_ctrl_c_stops_a_guest_that_makes_no_exits(spin: Spin) -> None:
    session, gdb = spin
    # the attach stopped the machine in the hypervisor; resumed, the guest's interrupts go on
    before = ticks(session)
    sigint_stop(gdb.run_for(3.0))
    gdb.send("-exec-continue")
    wait_for(lambda: ticks(session) >= before + 200, 300, "the guest's interrupts after the resume")
    sigint_stop(gdb.interrupt(timeout=120))
    assert session.proc is not None
    assert session.proc.poll() is None, "\n".join(session.hv_lines[-20:])  # the machine still runs
