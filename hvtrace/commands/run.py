"""`hvtrace run`: its options. What it does (boot the hypervisor under QEMU or Bochs, stream its console,
exit with its status) is :mod:`hvtrace.commands.run_handler`, imported when the command runs: building
the parser loads no session, image or process module."""

from __future__ import annotations

from hvtrace.commands import values
from hvtrace.commands.parser import Subcommands, add_command
from hvtrace.commands.session_options import (
    add_gdb_arguments,
    add_guest_arguments,
    add_machine_arguments,
    add_qemu_arguments,
)
from hvtrace.launch.memory import GUEST_MIN_MEMORY_MB

FAULT_KINDS = ("ud", "gp", "pf", "de")


def register(sub: Subcommands) -> None:
    run = add_command(sub, "run", "hvtrace.commands.run_handler:cmd_run")
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
