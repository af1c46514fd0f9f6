"""SIGINT/SIGTERM stop the emulator and clean up; SIGKILL of hvtrace still takes the emulator down."""

from __future__ import annotations

import signal
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from hvtrace.launch import procs
from hvtrace.launch.qemu import sweep_stale_ram_files, sweep_stale_tmpdirs
from hvtrace.trace.tracefile import TraceFile
from tests.integration.conftest import Live

pytestmark = [pytest.mark.slow, pytest.mark.qemu]


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_stops_qemu_and_cleans_up(hvtrace_live: Callable[..., Live], sig: int, code: int) -> None:
    live = hvtrace_live("run", "--cpus", "2", "--append", "hang=1", "--timeout", "120")
    live.read_until(r"^hang=1: spinning forever", timeout=60)
    pid, ram = live.emulator_pid, live.ram_file
    assert pid is not None
    assert ram is not None
    assert ram.exists()
    live.proc.send_signal(sig)
    assert live.proc.wait(timeout=30) == code
    assert "interrupted by" in live.stderr_text()
    assert procs.wait_gone(pid, 5.0)
    assert procs.group_members(pid) == []
    assert not ram.exists()


@pytest.mark.bochs
def test_sigint_stops_bochs(hvtrace_live: Callable[..., Live]) -> None:
    live = hvtrace_live("run", "--backend", "bochs", "--append", "hang=1", "--timeout", "120")
    live.read_until(r"^hang=1: spinning forever", timeout=120)
    pid = live.emulator_pid
    assert pid is not None
    live.proc.send_signal(signal.SIGINT)
    assert live.proc.wait(timeout=30) == 130
    assert procs.wait_gone(pid, 5.0)
    assert procs.group_members(pid) == []


def test_sigkill_of_hvtrace_kills_qemu(hvtrace_live: Callable[..., Live]) -> None:
    live = hvtrace_live("run", "--append", "hang=1", "--timeout", "120")
    live.read_until(r"^hang=1: spinning forever", timeout=60)
    pid, ram = live.emulator_pid, live.ram_file
    assert pid is not None
    assert ram is not None
    live.proc.kill()  # no chance to clean up: PR_SET_PDEATHSIG must take QEMU down
    live.proc.wait()
    assert procs.wait_gone(pid, 5.0), "QEMU outlived a SIGKILLed hvtrace"
    # Its leftovers are named after the dead hvtrace pid; the next run's sweep removes them.
    assert ram.exists()
    assert ram in sweep_stale_ram_files()
    assert not ram.exists()
    tmpdirs = list(Path(tempfile.gettempdir()).glob(f"hvtrace-qemu-{live.proc.pid}-*"))
    assert len(tmpdirs) == 1
    assert set(tmpdirs) <= set(sweep_stale_tmpdirs())
    assert not tmpdirs[0].exists()


def test_ctrl_c_ends_a_capture_with_a_complete_file(
    hvtrace_live: Callable[..., Live], tmp_path: Path
) -> None:
    out = tmp_path / "c.hvt"
    live = hvtrace_live("capture", "--backend", "qemu", "--append", "storm=1", "-o", str(out))
    live.read_until(r"^hvtrace: qemu pid \d+", timeout=60)
    pid = live.emulator_pid
    assert pid is not None
    time.sleep(2)  # let records flow
    live.proc.send_signal(signal.SIGINT)
    assert live.proc.wait(timeout=30) == 0  # Ctrl-C is how a user ends an open-ended capture
    assert procs.wait_gone(pid, 5.0)
    tf = TraceFile.open(out)
    assert not tf.recovered  # the index was written on the way out: nothing had to be rescanned
    assert tf.summary is not None
    assert tf.summary["stop"] == "interrupted"
    assert len(tf.records()) > 1000
