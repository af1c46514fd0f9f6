"""Which exit codes each subcommand can end with: the epilog of its --help (and of `hvtrace --help`,
which lists them all). One table, so a command's help never lists another command's codes."""

from __future__ import annotations

from hvtrace.exitcodes import DESCRIPTIONS, ExitCode

E = ExitCode

#: Codes every command can end with: a bad option, a file it cannot read or write, Ctrl-C, kill.
_COMMON = (E.USAGE, E.IO_ERROR, E.SIGINT, E.SIGTERM)
#: Codes of commands that boot a session (run, capture, tui, top without --ram).
_BOOT = (E.NO_INPUT, E.TOOL_MISSING, E.EMULATOR_FAILED, E.NO_STATUS, E.BUILD_FAILED)
#: Codes of commands that attach to a session's RAM file.
_ATTACH = (E.NO_INPUT, E.NO_TRACE_HEADER)
#: Codes of commands that read a trace file.
_READ = (E.BAD_DATA, E.NO_INPUT, E.ABI_MISMATCH, E.DAMAGED)

#: The first line of each command's table: what 0 (or the low codes) mean.
SUCCESS: dict[str, str] = {
    "run": "0..63  the hypervisor's status code (hvtrace.abi.HvStatus), or the guest's own exit code "
    "(GUEST_EXIT hypercall, isa-debug-exit)",
    "doctor": "     0  at least one back end is usable here",
    "capture": "     0  the trace file was written (also when stopped by Ctrl-C after the capture began)",
    "report": "     0  the report was printed",
    "query": "     0  the result was printed",
    "export": "     0  the file was written",
    "gdb": "     N  gdb's own exit status",
    "core-from-dump": "     0  the core file was written",
    "tui": "     0  the UI was closed",
    "top": "     0  done (--once, or stopped with Ctrl-C)",
    "image": "     0  the ISO was written",
}

CODES: dict[str, tuple[ExitCode, ...]] = {
    "run": (*_BOOT, E.TIMEOUT),
    "doctor": (E.TOOL_MISSING,),
    "capture": (*_BOOT, *_ATTACH, E.CANT_CREATE),
    "report": _READ,
    "query": _READ,
    "export": (*_READ, E.CANT_CREATE),
    "gdb": (E.NO_INPUT, E.TOOL_MISSING, E.BUILD_FAILED),
    "core-from-dump": (E.NO_INPUT, E.CANT_CREATE),
    "tui": (*_BOOT, *_ATTACH, *_READ),
    "top": (*_BOOT, *_ATTACH),
    "image": (E.NO_INPUT, E.TOOL_MISSING, E.BUILD_FAILED, E.CANT_CREATE),
}


def _lines(codes: set[ExitCode]) -> str:
    return "\n".join(f"  {c:4d}  {DESCRIPTIONS[c]}" for c in sorted(codes))


def command_epilog(command: str) -> str:
    """The exit-code table of one command's --help."""
    codes = set(CODES[command]) | set(_COMMON)
    return f"exit codes of `hvtrace {command}`:\n{SUCCESS[command]}\n{_lines(codes)}"


def overall_epilog() -> str:
    """The exit-code table of `hvtrace --help`: every code any command returns."""
    every = set(_COMMON).union(*CODES.values())
    return (
        "exit codes (each command's --help lists its own):\n"
        "  0..63  the hypervisor's status code (`run`, `capture`, `tui`), or a guest's exit code\n"
        f"{_lines(every)}"
    )
