"""`hvtrace` command line: `run` boots the hypervisor under QEMU or Bochs, `doctor` checks the host."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import NoReturn

from hvtrace import __version__
from hvtrace.doctor import run_doctor
from hvtrace.elfcore import dump_segments, write_core
from hvtrace.exitcodes import DESCRIPTIONS, ExitCode, LaunchError
from hvtrace.gdb_launch import run_gdb
from hvtrace.interrupts import Interrupted, raise_on_signals
from hvtrace.launch.bochs import BochsSession
from hvtrace.launch.guest import GUEST_MIN_MEMORY_MB, launch_options
from hvtrace.launch.qemu import QemuSession
from hvtrace.launch.session import RunResult, Session, parse_memory
from hvtrace.trace import cli as trace_cli
from hvtrace.trace.errors import TraceError
from hvtrace.trace.output import check_output

FAULT_KINDS = ("ud", "gp", "pf", "de")
BACKEND_NAMES = ("qemu", "bochs")


def err(message: str) -> None:
    print(f"hvtrace: {message}", file=sys.stderr, flush=True)


def out(message: str) -> None:
    print(f"hvtrace: {message}", flush=True)


class HvArgumentParser(argparse.ArgumentParser):
    """argparse with one-line usage errors and exit code 64 (EX_USAGE) instead of 2."""

    def error(self, message: str) -> NoReturn:
        err(f"usage error: {message} (see '{self.prog} --help')")
        raise SystemExit(ExitCode.USAGE)


def _backend(text: str) -> str:
    if text not in BACKEND_NAMES:
        raise argparse.ArgumentTypeError(f"unknown backend {text!r} (choose qemu or bochs)")
    return text


def _positive_int(name: str) -> type[int]:
    def conv(text: str) -> int:
        try:
            value = int(text, 0)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer (got {text!r})") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"must be at least 1 (got {value})")
        return value

    return conv  # type: ignore[return-value]


def _nonneg_int(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer (got {text!r})") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative (got {value})")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--timeout must be a number of seconds (got {text!r})") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"--timeout must be positive (got {text})")
    return value


def _memory(text: str) -> int:
    try:
        return parse_memory(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--gdb must be a TCP port number (got {text!r})") from None
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"--gdb port must be 1..65535 (got {value})")
    return value


def build_parser() -> HvArgumentParser:
    codes = "\n".join(f"  {int(c):3d}  {d}" for c, d in DESCRIPTIONS.items())
    parser = HvArgumentParser(
        prog="hvtrace",
        description="GDB-integrated tracing hypervisor: boot it, trace it, inspect it.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"exit codes of `hvtrace run`:\n    0..63  the hypervisor's status code (or a guest's exit "
        f"code)\n{codes}",
    )
    parser.add_argument("--version", action="version", version=f"hvtrace {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="boot the hypervisor under an emulator and report its status",
        description="Build the image if needed, boot it, stream its console, exit with its status.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"exit codes:\n    0..63  the hypervisor's status code (hvtrace.abi.HvStatus), or the "
        f"guest's own exit code (GUEST_EXIT hypercall, isa-debug-exit)\n{codes}",
    )
    run.add_argument(
        "--backend",
        type=_backend,
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
    run.add_argument(
        "--cpus",
        type=_positive_int("--cpus"),
        default=1,
        metavar="N",
        help="number of virtual CPUs (default 1)",
    )
    run.add_argument(
        "--memory",
        type=_memory,
        default=None,
        metavar="SIZE",
        help=f"guest RAM, e.g. 256M or 1G (default 256M; with --guest the default is at least "
        f"{GUEST_MIN_MEMORY_MB}M)",
    )
    run.set_defaults(default_memory_mb=256)
    run.add_argument(
        "--timeout",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="give up when no final status arrives in time (default: qemu 60, bochs 180)",
    )
    run.add_argument(
        "--gdb",
        type=_port,
        default=None,
        metavar="PORT",
        help="gdbstub port on 127.0.0.1 (QEMU only; default: a free port)",
    )
    run.add_argument(
        "--inject-fault",
        choices=FAULT_KINDS,
        default=None,
        metavar="{ud,gp,pf,de}",
        help="make a CPU raise this exception in the hypervisor (kernel cmdline fault=KIND)",
    )
    run.add_argument(
        "--fault-cpu",
        type=_nonneg_int,
        default=None,
        metavar="N",
        help="CPU that raises the injected fault (kernel cmdline fault_cpu=N)",
    )
    add_guest_arguments(run)
    add_qemu_arguments(run)

    sub.add_parser("doctor", help="check this host: emulators, KVM, gdb, toolchain; say what to install")
    add_trace_commands(sub)
    add_gdb_commands(sub)
    add_tui_command(sub)
    return parser


def add_guest_arguments(p: argparse.ArgumentParser) -> None:
    """--guest/--initrd/--append/--hv-append (run, and capture/tui when they start a session).

    With --guest, --append is the guest kernel's command line; --hv-append always is the hypervisor's.
    Resolved by :func:`hvtrace.launch.guest.launch_options`.
    """
    p.add_argument(
        "--guest",
        type=Path,
        default=None,
        metavar="KERNEL",
        help="boot this guest kernel under the hypervisor (multiboot ELF32/ELF64/a.out kludge, or a Linux "
        "bzImage); --append becomes its command line",
    )
    p.add_argument(
        "--initrd",
        type=Path,
        default=None,
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
        default=None,
        metavar="MODEL[,FEATURES]",
        help="QEMU CPU model and features, e.g. max or qemu64,+x2apic; under TCG hvtrace adds what its "
        "SVM back end needs (+svm,+npt,+pdpe1gb) unless named (default qemu64; with --accel kvm: host)",
    )
    p.add_argument(
        "--qemu-arg",
        action="append",
        default=None,
        metavar="ARG",
        help="extra QEMU arguments, repeatable, appended last; each value is split like shell words: "
        "--qemu-arg '-device virtio-rng-pci' or --qemu-arg=-device --qemu-arg=virtio-rng-pci",
    )


def add_session_source_arguments(p: argparse.ArgumentParser) -> None:
    """Where records come from, shared by capture and tui: a running session's RAM file, or a new one."""
    p.add_argument("--ram", type=Path, default=None, metavar="PATH", help="RAM file of a running session")
    p.add_argument("--backend", type=_backend, default=None, metavar="{qemu,bochs}", help="start a session")
    p.add_argument("--cpus", type=_positive_int("--cpus"), default=1, metavar="N")
    p.add_argument(
        "--memory",
        type=_memory,
        default=None,
        metavar="SIZE",
        help=f"guest RAM (default 64M; with --guest {GUEST_MIN_MEMORY_MB}M)",
    )
    p.set_defaults(default_memory_mb=64)
    add_guest_arguments(p)
    add_qemu_arguments(p)


def check_session_source(args: argparse.Namespace) -> None:
    """capture/tui: the guest and QEMU options only apply when a session is started (raises LaunchError)."""
    attached = args.ram is not None or getattr(args, "replay", None) is not None
    if (args.guest is not None or args.initrd is not None) and attached:
        raise LaunchError(ExitCode.USAGE, "--guest/--initrd start a session: they exclude --ram and --replay")
    if (args.cpu_model is not None or args.qemu_arg) and attached:
        raise LaunchError(
            ExitCode.USAGE, "--cpu-model/--qemu-arg apply to a session hvtrace starts, not to --ram/--replay"
        )


def add_tui_command(sub: argparse._SubParsersAction[HvArgumentParser]) -> None:
    t = sub.add_parser(
        "tui",
        help="live per-CPU exits in a terminal UI (attach, start a session, or replay a trace file)",
        description="Textual UI over a session's exit records: attach to a running `hvtrace run` "
        "(--ram PATH), start one (the default; --backend/--cpus/--memory/--guest/--initrd/--append/"
        "--hv-append/--cpu-model/--qemu-arg as for run) or "
        "replay a trace file (--replay FILE). Press ? in the UI for its keys.",
    )
    t.add_argument("--replay", type=Path, default=None, metavar="FILE", help="trace file to replay")
    add_session_source_arguments(t)
    t.add_argument(
        "--timeout", type=_seconds, default=3600.0, metavar="SECONDS", help="stop a started session after"
    )
    t.add_argument(
        "--log-size", type=_positive_int("--log-size"), default=1 << 20, metavar="N", help="records kept"
    )


def cmd_tui(args: argparse.Namespace) -> int:
    # hvtrace.tui is installed from tui/ (package-dir mapping); imported lazily: Textual loads slowly
    tui_main = importlib.import_module("hvtrace.tui.main")
    code: int = tui_main.run(args)
    return code


def add_gdb_commands(sub: argparse._SubParsersAction[HvArgumentParser]) -> None:
    g = sub.add_parser(
        "gdb",
        help="gdb with the hypervisor's symbols and the hv-* commands (live gdbstub or core file)",
        description="Start gdb on hv/build/hvtrace.elf with the hv-* commands loaded (help hv), "
        "connected to a running session's gdbstub (--port, printed by `hvtrace run` as 'hvtrace: gdb "
        "port N'; or --ram PATH of that session) or a post-mortem core (--core FILE, --dump PREFIX).",
    )
    g.add_argument("--port", type=_gdb_port, default=None, metavar="N", help="gdbstub port on 127.0.0.1")
    g.add_argument("--ram", type=Path, default=None, metavar="PATH", help="RAM file of a running session")
    g.add_argument("--core", type=Path, default=None, metavar="FILE", help="ELF core file (post mortem)")
    g.add_argument(
        "--dump", type=Path, default=None, metavar="PREFIX", help="raw RAM dump PREFIX.<hex start>"
    )
    g.add_argument("--elf", type=Path, default=None, metavar="FILE", help="hypervisor image (symbols)")
    g.add_argument("--ex", action="append", default=[], metavar="CMD", help="run a gdb command (repeatable)")
    g.add_argument("--batch", action="store_true", help="exit after the --ex commands")

    c = sub.add_parser(
        "core-from-dump",
        help="wrap raw RAM dump files (PREFIX.<hex start>) as an ELF core for gdb",
    )
    c.add_argument("prefix", type=Path, metavar="PREFIX")
    c.add_argument("-o", "--output", type=Path, required=True, metavar="FILE")


def _gdb_port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--port must be a TCP port number (got {text!r})") from None
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"--port must be 1..65535 (got {value})")
    return value


def cmd_gdb(args: argparse.Namespace) -> int:
    return run_gdb(
        port=args.port,
        ram=args.ram,
        core=args.core,
        dump=args.dump,
        elf=args.elf,
        commands=args.ex,
        batch=args.batch,
    )


def cmd_core_from_dump(args: argparse.Namespace) -> int:
    check_output(args.output)
    segs = dump_segments(args.prefix)
    if not segs:
        raise LaunchError(ExitCode.USAGE, f"no dump files {args.prefix}.<start hex>")
    write_core(segs, args.output)
    out(f"wrote {args.output}: {len(segs)} segments ({', '.join(hex(a) for a, _ in segs)})")
    return 0


def add_trace_commands(sub: argparse._SubParsersAction[HvArgumentParser]) -> None:
    cap = sub.add_parser(
        "capture",
        help="capture exit records to a trace file (attach to a run, or start one)",
        description="Attach to a running `hvtrace run` (--ram PATH, printed as 'hvtrace: ram file PATH') "
        "or boot one (--backend), and write its exit records to a trace file.",
    )
    cap.add_argument("-o", "--output", required=True, type=Path, metavar="FILE", help="trace file to write")
    add_session_source_arguments(cap)
    cap.add_argument("--duration", type=_seconds, default=None, metavar="SECONDS")
    cap.add_argument("--count", type=_positive_int("--count"), default=None, metavar="N")
    cap.add_argument("--until-reason", default=None, metavar="NAME", help="stop after the first such exit")
    cap.add_argument("--cpu", type=_nonneg_int, action="append", default=None, metavar="N", help="keep CPU N")
    cap.add_argument("--reason", action="append", default=None, metavar="NAME", help="keep this reason")
    cap.add_argument("--no-lossless", action="store_true", help="never write ring tails (passive reader)")
    cap.add_argument("--quiet", action="store_true", help="no progress line")

    rep = sub.add_parser("report", help="per-reason / per-CPU statistics of a trace file")
    rep.add_argument("file", type=Path, metavar="FILE")
    rep.add_argument("--json", action="store_true", help="machine-readable output")

    exp = sub.add_parser("export", help="export a trace file to Perfetto (Chrome JSON), CSV or Parquet")
    exp.add_argument("file", type=Path, metavar="FILE")
    exp.add_argument("--format", choices=("perfetto", "csv", "parquet"), required=True)
    exp.add_argument("-o", "--output", type=Path, required=True, metavar="OUT")


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


def make_session(args: argparse.Namespace) -> Session:
    opts = launch_options(args, hv_parts=fault_options(args))

    def show(line: str) -> None:
        print(line, flush=True)

    if args.backend == "qemu":
        return QemuSession(
            cpus=args.cpus,
            memory_mb=opts.memory_mb,
            cmdline=opts.hv_cmdline,
            guest=opts.guest,
            timeout=args.timeout,
            on_line=show,
            on_info=out,
            accel=args.accel,
            gdb_port=args.gdb,
            cpu_model=opts.cpu_model,
            qemu_args=opts.qemu_args,
        )
    if args.accel != "tcg":
        raise LaunchError(ExitCode.USAGE, "--accel applies to the qemu backend only")
    if args.gdb is not None:
        raise LaunchError(ExitCode.USAGE, "--gdb needs the qemu backend (this Bochs build has no gdbstub)")
    return BochsSession(
        cpus=args.cpus,
        memory_mb=opts.memory_mb,
        cmdline=opts.hv_cmdline,
        guest=opts.guest,
        timeout=args.timeout,
        on_line=show,
        on_info=out,
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
            with session:
                result = session.wait()
        except Interrupted as e:
            err(f"interrupted by {e}: emulator stopped, temporary files removed")
            return e.exit_code
    report(result)
    return result.exit_code


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            return cmd_run(args)
        if args.command == "doctor":
            return run_doctor()
        if args.command == "gdb":
            return cmd_gdb(args)
        if args.command == "core-from-dump":
            return cmd_core_from_dump(args)
        if args.command == "tui":
            check_session_source(args)
            return cmd_tui(args)
        if args.command == "capture":
            check_session_source(args)
        if args.command in ("capture", "report", "export"):
            return trace_cli.main(args)
        parser.print_help(sys.stderr)
        err("usage error: no command given (choose run, doctor, capture, report, export or gdb)")
        return ExitCode.USAGE
    except (LaunchError, TraceError) as e:
        err(f"error: {e.message}")
        return e.code
