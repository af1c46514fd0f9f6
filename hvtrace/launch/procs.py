"""Child processes that can never outlive hvtrace.

Every emulator is started in its own process group (so a terminal's ^C reaches only hvtrace, which
then stops the emulator in order) and with PR_SET_PDEATHSIG(SIGKILL), so the kernel kills it if
hvtrace itself dies without cleaning up. Note PDEATHSIG fires when the *thread* that forked exits:
spawn from a thread that lives as long as the child (normally the main thread).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

PR_SET_PDEATHSIG = 1

# Resolve prctl before any fork: the preexec hook then only calls an already-bound function.
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_prctl = _libc.prctl
_prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
_prctl.restype = ctypes.c_int


def _die_with_parent_hook(parent_pid: int) -> Callable[[], None]:
    def hook() -> None:
        if _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            os._exit(126)
        # The parent may have died between fork and prctl: then nobody would ever kill us.
        if os.getppid() != parent_pid:
            os._exit(126)

    return hook


def spawn(
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    stdout: int | IO[bytes] | None = subprocess.PIPE,
    stderr: int | IO[bytes] | None = subprocess.PIPE,
    pass_fds: Sequence[int] = (),
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a new process group, stdin from /dev/null, killed if we die; ``pass_fds``
    stay open in the child (under the same numbers)."""
    return subprocess.Popen(
        list(argv),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        process_group=0,
        # prctl(PR_SET_PDEATHSIG) can only be set in the child; prctl is bound before fork.
        preexec_fn=_die_with_parent_hook(os.getpid()),  # noqa: PLW1509
        close_fds=True,
        pass_fds=tuple(pass_fds),
    )


def signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    """Send ``sig`` to the child's process group (its pgid is its pid); ignore if already gone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def stop(proc: subprocess.Popen[bytes], first: int = signal.SIGTERM, grace: float = 5.0) -> int:
    """Stop the child and its group: ``first`` signal, then SIGKILL after ``grace`` seconds.

    Returns the child's return code (negative signal number when killed by a signal).
    """
    if proc.poll() is not None:
        # Already reaped: its pid (= pgid) may belong to someone else by now; never signal it.
        return proc.returncode
    signal_group(proc, first)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    if proc.returncode is None:
        # Still unreaped, so the pgid is still ours: kill the leader and anything it forked.
        signal_group(proc, signal.SIGKILL)
    return proc.wait()


def pid_alive(pid: int) -> bool:
    """True when ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    # Field 3 (after the parenthesised comm, which may contain spaces) is the state.
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")


def cpu_seconds(pid: int, tid: int | None = None) -> float:
    """User + system CPU time ``pid`` has used so far, all its threads, or its thread ``tid`` only
    (proc(5): /proc/PID[/task/TID]/stat fields 14 and 15, in clock ticks of SC_CLK_TCK, usually 10 ms)."""
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    try:
        stat = Path(path).read_text()
    except (FileNotFoundError, ProcessLookupError):
        raise ProcessLookupError(
            f"no process {pid}" + (f" thread {tid}" if tid else "") + " (it exited)"
        ) from None
    # After the parenthesised comm the fields start at 3 (state): utime is field 14, stime field 15.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def busiest_thread(pid: int) -> int:
    """The id of ``pid``'s thread that has used the most CPU time (QEMU TCG: the vCPU thread of a busy
    1-CPU guest; QEMU names its threads only with ``-name debug-threads=on``)."""
    times: dict[int, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError):
            times[int(task.name)] = cpu_seconds(pid, int(task.name))
    if not times:
        raise ProcessLookupError(f"no process {pid} (it exited)")
    return max(times, key=lambda tid: times[tid])


def group_members(pgid: int) -> list[int]:
    """Live pids whose process group is ``pgid`` (used by tests to prove nothing was left behind)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        # After comm: state ppid pgrp ...
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def wait_gone(pid: int, timeout: float) -> bool:
    """Poll until ``pid`` is gone (or a zombie); True if it went within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return not pid_alive(pid)
