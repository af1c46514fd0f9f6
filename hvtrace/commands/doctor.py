"""`hvtrace doctor`: the parser of the host check (the checks are :mod:`hvtrace.doctor`)."""

from __future__ import annotations

import argparse

from hvtrace.commands.parser import Subcommands, add_command
from hvtrace.doctor import run_doctor

#: `hvtrace doctor --help`: the line in the command list, and the description.
SUMMARY = "check this host: emulators, KVM, gdb, toolchain; say what to install"
DESCRIPTION = (
    "Check what this host can run: QEMU and its accelerators, KVM's nested VT-x/SVM, "
    "Bochs and its VMX model, gdb and its Python, the toolchain that builds hv/. Ends with which "
    "back ends `hvtrace run` can use here and the apt-get line for the others."
)


def register(sub: Subcommands) -> None:
    add_command(sub, "doctor", cmd_doctor, SUMMARY, DESCRIPTION)


def cmd_doctor(args: argparse.Namespace) -> int:
    return run_doctor()
