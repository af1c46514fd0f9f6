"""hvtrace.gdbext: the gdb face, loaded in gdb's embedded Python by hvtrace_gdb.py (`hvtrace gdb`).

The hv-* commands (hv-cpus, hv-exits, hv-vmcs, hv-ept, hv-break, hv-guest, hv-symbols; ``help hv``)
decode hypervisor state through the hvtrace decoders, live over QEMU's gdbstub or post mortem from a
core file (a QEMU dump, or a Bochs RAM dump wrapped as one). commands registers them; command is
their base, options the argparse parser each declares its options with; cmd_* one command each;
model and target the pure layer and the memory access.
Installed as ``hvtrace.gdbext`` (setuptools package-dir mapping), never as a top-level ``gdbext``.
"""
