"""Children are in their own process group and die with their parent (PR_SET_PDEATHSIG)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from hvtrace.launch import procs


def test_child_gets_its_own_process_group_and_stop_kills_it() -> None:
    proc = procs.spawn(["sleep", "60"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert os.getpgid(proc.pid) == proc.pid
        assert os.getpgid(proc.pid) != os.getpgrp()
        assert procs.group_members(proc.pid) == [proc.pid]
        rc = procs.stop(proc, first=signal.SIGTERM, grace=5)
        assert rc == -signal.SIGTERM
        assert not procs.pid_alive(proc.pid)
        assert procs.group_members(proc.pid) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_stop_escalates_to_sigkill() -> None:
    # A child that ignores SIGTERM.
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(60)"
    )
    proc = procs.spawn([sys.executable, "-c", code], stderr=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"ready"
        rc = procs.stop(proc, first=signal.SIGTERM, grace=0.5)
        # killed by SIGKILL (not ended by its own 60 s sleep): the escalation happened; how long it
        # took is a wall-clock matter this test does not assert
        assert rc == -signal.SIGKILL
        assert not procs.pid_alive(proc.pid)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_child_dies_when_its_parent_is_killed() -> None:
    # An intermediate Python process spawns `sleep` through procs.spawn, prints its pid, then we
    # SIGKILL the intermediate: the kernel must kill the sleep (PDEATHSIG), nobody else does.
    script = textwrap.dedent(
        """
        import subprocess, sys, time
        from hvtrace.launch import procs
        p = procs.spawn(["sleep", "60"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print(p.pid, flush=True)
        time.sleep(60)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, start_new_session=True)
    grandchild = 0
    try:
        assert parent.stdout is not None
        grandchild = int(parent.stdout.readline())
        assert procs.pid_alive(grandchild)
        parent.kill()
        parent.wait()
        assert procs.wait_gone(grandchild, 5.0), "child outlived its killed parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if grandchild and procs.pid_alive(grandchild):
            os.kill(grandchild, signal.SIGKILL)


def test_cpu_seconds_is_the_process_user_and_system_time() -> None:
    """/proc/PID/stat's utime + stime: for this process, what os.times() says (the same ticks)."""
    start = procs.cpu_seconds(os.getpid())
    while procs.cpu_seconds(os.getpid()) < start + 0.05:  # burn a few clock ticks
        sum(range(10000))
    t = os.times()
    assert abs(procs.cpu_seconds(os.getpid()) - (t.user + t.system)) < 0.05
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    with pytest.raises(ProcessLookupError, match=f"no process {child.pid}"):
        procs.cpu_seconds(child.pid)


BURNER = """
import threading, time
def burn():
    print(threading.get_native_id(), flush=True)
    while True:
        pass
threading.Thread(target=burn, daemon=True).start()
time.sleep(60)
"""


def test_busiest_thread_is_the_one_that_burned_cpu() -> None:
    """A fresh process (pytest's own threads have histories): its burning thread, not its sleeping main."""
    child = subprocess.Popen([sys.executable, "-c", BURNER], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        tid = int(child.stdout.readline())
        while procs.cpu_seconds(child.pid, tid) < 0.3:  # well past the main thread's start-up
            time.sleep(0.02)
        assert procs.busiest_thread(child.pid) == tid
        assert procs.cpu_seconds(child.pid) >= procs.cpu_seconds(child.pid, tid)
    finally:
        child.kill()
        child.wait()
