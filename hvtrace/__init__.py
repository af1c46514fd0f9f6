"""hvtrace: host-side Python for the hvtrace tracing hypervisor.

The ABI mirror (:mod:`hvtrace.abi`) and the decoders (:mod:`hvtrace.decode`), the image build
(:mod:`hvtrace.image`), the emulator sessions (:mod:`hvtrace.launch`), the trace pipeline (capture,
trace files, report, export, replay: :mod:`hvtrace.trace`), the gdb launcher and MI driver
(:mod:`hvtrace.gdb_launch`, :mod:`hvtrace.gdbmi`), the Linux guest assets (:mod:`hvtrace.guest_assets`)
and the command line (:mod:`hvtrace.cli`, one module a subcommand in :mod:`hvtrace.commands`). The gdb
commands (``hvtrace.gdbext``, from gdbext/) and the terminal UI (``hvtrace.tui``, from tui/) build on it.
"""

__version__ = "0.1.0"
