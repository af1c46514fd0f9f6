"""Real gdb against the hypervisor's gdb stub built for the host (issue 17): ``target remote | stub``
with the fake target of tests/native/test_gdbstub.c. gdb reads the XML target description, lists the
CPUs as threads, reads and writes registers and memory (escaped X packets), stops at a software
breakpoint, single-steps, passes `monitor` commands, and honours Qqemu.PhyMemMode like QEMU."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.unit.gdbstub_native import build


@pytest.fixture(scope="module")
def exe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("gdbstub"))


def gdb(exe: Path, *commands: str) -> str:
    path = shutil.which("gdb")
    assert path is not None, "gdb is needed"
    argv = [path, "-nx", "-batch", "-ex", "set pagination off", "-ex", f"target remote | {exe}"]
    for c in commands:
        argv += ["-ex", c]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    return r.stdout + r.stderr


def test_gdb_threads_registers_memory(exe: Path) -> None:
    out = gdb(
        exe,
        "show architecture",
        "info threads",
        "p/x $rip",
        "p/x $fs_base",
        "thread 3",
        "p/x $rip",
        "set $rax = 0x1234",
        "p/x $rax",
        "set *(unsigned int *)0x100010 = 0x7d23242a",
        "x/4xb 0x100010",
        "x/4xb 0x100000",
    )
    assert '(currently "i386:x86-64")' in out  # from the target description
    assert "* 1    Thread 1" in out
    assert "2    Thread 2" in out
    assert "Thread 4" in out
    assert "Thread 3 " not in out  # CPU 2 is offline
    assert "$1 = 0x100000" in out
    assert "$2 = 0xf5000" in out
    assert "$3 = 0x100300" in out
    assert "$4 = 0x1234" in out
    assert "0x100010:\t0x2a\t0x24\t0x23\t0x7d" in out  # '*', '$', '#', '}' went escaped
    assert "0x100000:\t0x01\t0x08\t0x0f\t0x16" in out


def test_gdb_breakpoint_step_monitor_physical(exe: Path) -> None:
    out = gdb(
        exe,
        "break *0x100040",
        "continue",
        "p/x $pc",
        "stepi",
        "p/x $pc",
        "monitor echo hello",
        "maint packet Qqemu.PhyMemMode:1",
        "x/2xb 0x1000",
        "maint packet Qqemu.PhyMemMode:0",
        "x/2xb 0x1000",
        "delete",
        "continue",
        "detach",
    )
    assert "Thread 2 hit Breakpoint 1, 0x0000000000100040" in out
    assert "$1 = 0x100040" in out
    assert "$2 = 0x100041" in out
    assert "cpu 1: hello" in out
    assert "0x1000:\t0xa5\t0xa4" in out
    assert "Cannot access memory at address 0x1000" in out
    assert "received signal SIGINT" in out
    assert "detached" in out
