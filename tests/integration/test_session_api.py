"""The reusable Python API: a live QEMU session exposes gdb port, QMP socket, RAM file and console."""

from __future__ import annotations

import asyncio
import mmap
import shutil
import socket
import time
from pathlib import Path

import pytest
from qemu.qmp import QMPClient

from hvtrace.launch import BochsSession, QemuSession
from hvtrace.launch.procs import group_members, wait_gone

pytestmark = [pytest.mark.slow]


def _wait_for_line(lines: list[str], text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(text in line for line in list(lines)):
            return
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not seen within {timeout} s:\n" + "\n".join(lines))


async def _qmp_status(sock: Path) -> str:
    client = QMPClient("hvtrace-test")
    await client.connect(str(sock))
    try:
        reply = await client.execute("query-status")
        assert isinstance(reply, dict)
        return str(reply["status"])
    finally:
        await client.disconnect()


@pytest.mark.qemu
def test_live_qemu_session_exposes_its_interfaces() -> None:
    seen: list[str] = []
    with QemuSession(cpus=2, memory_mb=128, cmdline="hang=1", timeout=60, on_line=seen.append) as s:
        _wait_for_line(s.lines, "hang=1: spinning forever", 60)
        assert s.pid is not None
        pid = s.pid
        # Shared guest RAM: the file has the VM's size and holds the loaded image (its strings).
        assert s.ram_path is not None
        ram_path = s.ram_path
        assert ram_path.stat().st_size == 128 << 20
        with ram_path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, prot=mmap.PROT_READ) as mem:
            assert mem.find(b"HVTRACE STATUS") != -1
        # QMP answers while the hypervisor runs.
        assert s.qmp_socket is not None
        assert asyncio.run(_qmp_status(s.qmp_socket)) == "running"
        # gdbstub on loopback (a connection halts the VM, so this comes last).
        with socket.create_connection(("127.0.0.1", s.gdb_port), timeout=5):
            pass
        result = s.wait(timeout=1)
        assert result.exit_code == 124
        assert result.timed_out
    assert seen == s.lines
    assert wait_gone(pid, 5)
    assert group_members(pid) == []
    assert not ram_path.exists()
    assert s.tmpdir is not None
    assert not s.tmpdir.exists()


@pytest.mark.qemu
def test_qemu_session_pass_result() -> None:
    with QemuSession(cpus=1) as s:
        result = s.wait()
    assert result.exit_code == 0
    assert result.status is not None
    assert result.status.passed
    assert result.returncode == 1  # isa-debug-exit: (0 << 1) | 1
    assert result.notes == []
    assert any(line.startswith("memory map") for line in s.lines)


@pytest.mark.bochs
def test_bochs_session_pass_result() -> None:
    s = BochsSession(cpus=1)
    try:
        with s:
            result = s.wait()
    finally:
        if s.tmpdir is not None and s.result is not None and s.result.kept_dir is not None:
            shutil.rmtree(s.tmpdir, ignore_errors=True)
    assert result.exit_code == 0, s.lines
    assert result.status is not None
    assert result.returncode == 0
    assert result.kept_dir is None
    assert s.tmpdir is not None
    assert not s.tmpdir.exists()
