"""The options that say which session a command runs on, shared by run, capture and tui, and the one
check of the ways to give it (``--ram`` attaches, ``--backend`` starts, ``--replay`` reads a file)."""

from __future__ import annotations

import argparse
from pathlib import Path

from hvtrace.commands import values
from hvtrace.commands.parser import UsageError
from hvtrace.launch.memory import GUEST_MIN_MEMORY_MB


def add_guest_arguments(p: argparse.ArgumentParser) -> None:
    """--guest/--initrd/--append/--hv-append (run, and capture/tui when they start a session).

    With --guest, --append is the guest kernel's command line; --hv-append always is the hypervisor's.
    Resolved by :func:`hvtrace.launch.guest.launch_options`.
    """
    p.add_argument(
        "--guest",
        type=Path,
        metavar="KERNEL",
        help="boot this guest kernel under the hypervisor (multiboot ELF32/ELF64/a.out kludge, or a Linux "
        "bzImage); --append becomes its command line",
    )
    p.add_argument(
        "--initrd",
        type=Path,
        metavar="FILE",
        help="the guest kernel's initrd (second multiboot module; needs --guest)",
    )
    p.add_argument(
        "--append",
        default="",
        metavar="ARGS",
        help="with --guest: the guest kernel's command line; without: raw text appended to the "
        "hypervisor's command line",
    )
    p.add_argument(
        "--hv-append",
        default="",
        metavar="TEXT",
        help="raw text appended to the hypervisor's own command line (with or without --guest)",
    )


def add_qemu_arguments(p: argparse.ArgumentParser) -> None:
    """--cpu-model/--qemu-arg (run, and capture/tui when they start a QEMU session)."""
    p.add_argument(
        "--cpu-model",
        metavar="MODEL[,FEATURES]",
        help="QEMU CPU model and features, e.g. max or qemu64,+x2apic; under TCG hvtrace adds what its "
        "SVM back end needs (+svm,+npt,+pdpe1gb) unless named (default qemu64; with --accel kvm: host)",
    )
    p.add_argument(
        "--qemu-arg",
        action="append",
        metavar="ARG",
        help="extra QEMU arguments, repeatable, appended last; each value is split like shell words: "
        "--qemu-arg '-device virtio-rng-pci' or --qemu-arg=-device --qemu-arg=virtio-rng-pci",
    )


def add_gdb_arguments(p: argparse.ArgumentParser) -> None:
    """--gdb [PORT]/--gdb-stub (run, and capture/tui when they start a session): the gdb port the
    session opens, printed when it starts (`hvtrace gdb --port PORT` attaches)."""
    p.add_argument(
        "--gdb",
        type=values.tcp_port("--gdb"),
        nargs="?",
        const=0,
        metavar="PORT",
        help="gdb port on 127.0.0.1 (default: a free one). QEMU: its gdbstub is always there (or the "
        "hypervisor's, --gdb-stub hv); Bochs: the hypervisor's resident stub (gdbstub=1 on COM3)",
    )
    p.add_argument(
        "--gdb-stub",
        choices=("qemu", "hv"),
        help="QEMU: which stub the gdb port reaches: QEMU's gdbstub (default) or the hypervisor's own",
    )


def add_machine_arguments(
    p: argparse.ArgumentParser, *, cpus_help: str, memory_help: str, default_memory_mb: int
) -> None:
    """--cpus/--memory: the size of a machine hvtrace boots (run, and capture/tui/top when they start a
    session). Each command words its help; ``default_memory_mb`` is the RAM without --memory, raised
    to at least GUEST_MIN_MEMORY_MB with --guest by :func:`hvtrace.launch.guest.launch_options`."""
    p.add_argument("--cpus", type=values.positive_int, default=1, metavar="N", help=cpus_help)
    p.add_argument("--memory", type=values.memory, metavar="SIZE", help=memory_help)
    p.set_defaults(default_memory_mb=default_memory_mb)


def add_session_source_arguments(p: argparse.ArgumentParser) -> None:
    """Where records come from, shared by capture and tui: a running session's RAM file, or a new one."""
    p.add_argument("--ram", type=Path, metavar="PATH", help="RAM file of a running session")
    p.add_argument("--backend", type=values.backend, metavar="{qemu,bochs}", help="start a session")
    add_machine_arguments(
        p,
        cpus_help="virtual CPUs of a started session (default 1)",
        memory_help=f"guest RAM (default 64M; with --guest {GUEST_MIN_MEMORY_MB}M)",
        default_memory_mb=64,
    )
    add_guest_arguments(p)
    add_qemu_arguments(p)
    add_gdb_arguments(p)


def check_session_source(args: argparse.Namespace, *, source_required: bool) -> None:
    """capture/tui: one way to get records, and options only for the way chosen (raises UsageError).

    ``--replay`` (tui only) reads a file, ``--ram`` attaches to a running session, ``--backend`` starts
    one; with ``source_required`` (capture) one of ``--ram``/``--backend`` must be given, else (tui)
    none means a new QEMU session. The guest, QEMU and gdb options only apply when a session is started.
    """
    replay = getattr(args, "replay", None)
    if replay is not None and (args.ram is not None or args.backend is not None):
        raise UsageError("--replay excludes --ram and --backend")
    if source_required and (args.ram is None) == (args.backend is None):
        raise UsageError("give either --ram PATH (attach) or --backend (start a session)")
    if args.ram is not None and args.backend is not None:
        raise UsageError("give --ram (attach) or --backend (start), not both")
    attached = args.ram is not None or replay is not None
    if (args.guest is not None or args.initrd is not None) and attached:
        raise UsageError("--guest/--initrd start a session: they exclude --ram and --replay")
    if (args.cpu_model is not None or args.qemu_arg) and attached:
        raise UsageError("--cpu-model/--qemu-arg apply to a session hvtrace starts, not to --ram/--replay")
    if (args.gdb is not None or args.gdb_stub is not None) and attached:
        raise UsageError("--gdb/--gdb-stub apply to a session hvtrace starts, not to --ram/--replay")
