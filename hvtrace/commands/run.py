"""`hvtrace run`: boot the hypervisor under QEMU or Bochs, stream its console, exit with its status."""

from __future__ import annotations

import argparse
import math
import os
import sys
from typing import cast

from hvtrace.commands import values
from hvtrace.commands.parser import Subcommands, add_command, err, out
from hvtrace.commands.session_options import (
    add_gdb_arguments,
    add_guest_arguments,
    add_machine_arguments,
    add_qemu_arguments,
)
from hvtrace.exitcodes import ExitCode, LaunchError
from hvtrace.interrupts import Interrupted, raise_on_signals
from hvtrace.launch import make_session as new_session
from hvtrace.launch.guest import GUEST_MIN_MEMORY_MB, launch_options
from hvtrace.launch.session import RunResult, Session

FAULT_KINDS = ("ud", "gp", "pf", "de")


def register(sub: Subcommands) -> None:
    run = add_command(sub, "run", cmd_run)
    run.add_argument(
        "--backend",
        type=values.backend,
        default="qemu",
        metavar="{qemu,bochs}",
        help="emulator: qemu (AMD SVM under TCG, or KVM) or bochs (Intel VT-x); default qemu",
    )
    run.add_argument(
        "--accel",
        choices=("tcg", "kvm"),
        default="tcg",
        help="QEMU accelerator; kvm needs nested VT-x/SVM (default tcg)",
    )
    add_machine_arguments(
        run,
        cpus_help="number of virtual CPUs (default 1)",
        memory_help="guest RAM, e.g. 256M or 1G (default 256M; with --guest the default is at least "
        f"{GUEST_MIN_MEMORY_MB}M)",
        default_memory_mb=256,
    )
    values.add_seconds_argument(
        run,
        "--timeout",
        "give up when no final status arrives in time; 0 = never (default: qemu 60, bochs 180, "
        "with --guest 600; none for a run that only ends when stopped: storm=1 without storm_iters, "
        "or hang=1)",
        convert=values.timeout,
    )
    add_gdb_arguments(run)
    run.add_argument(
        "--inject-fault",
        choices=FAULT_KINDS,
        metavar="{ud,gp,pf,de}",
        help="make a CPU raise this exception in the hypervisor (kernel cmdline fault=KIND)",
    )
    run.add_argument(
        "--fault-cpu",
        type=values.nonneg_int,
        metavar="N",
        help="CPU that raises the injected fault (kernel cmdline fault_cpu=N)",
    )
    add_guest_arguments(run)
    add_qemu_arguments(run)


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
