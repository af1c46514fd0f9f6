"""`hvtrace doctor`: the parser of the host check; the checks (:mod:`hvtrace.doctor`, which probe the
emulators, KVM, gdb and the toolchain) are imported when the command runs."""

from __future__ import annotations

from hvtrace.commands.parser import Subcommands, add_command


def register(sub: Subcommands) -> None:
    add_command(sub, "doctor", "hvtrace.commands.doctor_handler:cmd_doctor")
