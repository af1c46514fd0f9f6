"""What `hvtrace run` does (its parser: :mod:`hvtrace.commands.run`): boot the hypervisor under QEMU or
Bochs, stream its console, exit with its status."""

from __future__ import annotations

import argparse
import math
import os
import sys
from typing import cast

from hvtrace.commands.parser import err, out
from hvtrace.exitcodes import ExitCode, LaunchError
from hvtrace.interrupts import Interrupted, raise_on_signals
from hvtrace.launch import make_session as new_session
from hvtrace.launch.guest import launch_options
from hvtrace.launch.session import RunResult, Session


def fault_options(args: argparse.Namespace) -> tuple[str, ...]:
    """The hypervisor options of --inject-fault/--fault-cpu (raises LaunchError(USAGE) on conflicts)."""
    parts: list[str] = []
    if args.inject_fault is not None:
        parts.append(f"fault={args.inject_fault}")
    if args.fault_cpu is not None:
        if args.inject_fault is None:
            raise LaunchError(ExitCode.USAGE, "--fault-cpu needs --inject-fault")
        if args.fault_cpu >= args.cpus:
            raise LaunchError(
                ExitCode.USAGE, f"--fault-cpu {args.fault_cpu} does not exist with --cpus {args.cpus}"
            )
        parts.append(f"fault_cpu={args.fault_cpu}")
    return tuple(parts)


def kernel_cmdline(args: argparse.Namespace) -> str:
    """The hypervisor command line from the options (raises LaunchError on conflicts)."""
    return launch_options(args, hv_parts=fault_options(args)).hv_cmdline


def _show(line: str) -> None:
    # One write per line: the session's two console readers must never interleave within a line.
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def runs_until_stopped(hv_cmdline: str) -> bool:
    """Whether the hypervisor never ends the run by itself: the storm guest without a CPUID count
    (boot/guests/storm.c), or hang=1 (hv/core/main.c). The last word of a key wins, as in the
    hypervisor's parser (hv/core/lib/cmdline.c)."""
    words = dict(w.partition("=")[::2] for w in hv_cmdline.split())
    storm = words.get("storm") == "1" and "storm_iters" not in words
    return storm or words.get("hang") == "1"


#: Default wait for a run with a guest kernel: a Linux boot under TCG on a busy host takes minutes.
GUEST_TIMEOUT = 600.0


def session_timeout(args: argparse.Namespace, hv_cmdline: str) -> float | None:
    """The wait limit: --timeout as given (0 = none); without it none for a run meant to be attached
    to (it only ends when stopped), GUEST_TIMEOUT with a guest kernel, else the back end's default
    (None)."""
    if args.timeout == 0 or (args.timeout is None and runs_until_stopped(hv_cmdline)):
        return math.inf
    if args.timeout is None and args.guest is not None:
        return GUEST_TIMEOUT
    return cast("float | None", args.timeout)


def make_session(args: argparse.Namespace) -> Session:
    """The session `run`'s options describe (not started; raises LaunchError on conflicts)."""
    opts = launch_options(args, hv_parts=fault_options(args))
    return new_session(
        args.backend,
        accel=args.accel,
        gdb_port=args.gdb,
        gdb_stub=args.gdb_stub,
        timeout=session_timeout(args, opts.hv_cmdline),
        on_line=_show,
        on_info=out,
        **opts.session_args(),
    )


def report(result: RunResult) -> None:
    for note in result.notes:
        err(f"note: {note}")
    if result.kept_dir is not None:
        err(f"kept {result.kept_dir} for post-mortem (remove it when done)")
    if result.exit_code == 0:
        out(result.message)
    elif result.status is not None:
        err(result.message)
    else:
        err(f"error: {result.message}")
    out(f"exit code {result.exit_code}")


def cmd_run(args: argparse.Namespace) -> int:
    with raise_on_signals():
        try:
            session = make_session(args)
            if session.timeout == math.inf:
                out(f"runs until stopped: press Ctrl-C, or run `kill {os.getpid()}` (exit 143)")
            with session:
                result = session.wait()
        except Interrupted as e:
            err(f"interrupted by {e}: emulator stopped, temporary files removed")
            return e.exit_code
    report(result)
    return result.exit_code
