"""`hvtrace doctor`: the parser of the host check (the checks are :mod:`hvtrace.doctor`)."""

from __future__ import annotations

import argparse

from hvtrace.commands.parser import Subcommands
from hvtrace.doctor import run_doctor


def register(sub: Subcommands) -> None:
    doctor = sub.add_parser(
        "doctor",
        help="check this host: emulators, KVM, gdb, toolchain; say what to install",
        description="Check what this host can run: QEMU and its accelerators, KVM's nested VT-x/SVM, "
        "Bochs and its VMX model, gdb and its Python, the toolchain that builds hv/. Ends with which "
        "back ends `hvtrace run` can use here and the apt-get line for the others.",
    )
    doctor.set_defaults(func=cmd_doctor)


def cmd_doctor(args: argparse.Namespace) -> int:
    return run_doctor()
