"""hvtrace.gdbext: the gdb face, planned for a later issue.

It will hold gdb commands (hv-vmcs, hv-ept, hv-exits, hv-break, ...) that load in gdb's embedded
Python and decode hypervisor state through the hvtrace decoders over QEMU's gdbstub.
Installed as ``hvtrace.gdbext`` (setuptools package-dir mapping), never as a top-level ``gdbext``.
"""
