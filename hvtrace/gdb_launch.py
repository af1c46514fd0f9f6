"""`hvtrace gdb`: gdb with the hypervisor's symbols and the hv-* commands, on a live gdbstub or a core.

Targets: ``--port N`` (a running session's gdbstub on 127.0.0.1), ``--ram PATH`` (the session whose
QEMU maps that RAM file: its ``-gdb tcp:...:N`` is read from /proc), ``--core FILE`` (an ELF core, e.g.
QEMU dump-guest-memory or one written by ``hvtrace core-from-dump``) or ``--dump PREFIX`` (raw RAM
dump files ``PREFIX.<start hex>`` as the Bochs back end writes them, wrapped as a core on the fly).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from hvtrace import paths
from hvtrace.elfcore import dump_segments, write_core
from hvtrace.exitcodes import ExitCode, LaunchError
from hvtrace.launch.qemu import qemu_argv_of_ram
from hvtrace.tools import require_tool

GDB = "gdb"
GDB_PORT_RE = re.compile(r"^tcp:[^:]*:(\d+)$")


#: The image gdb loads by default: :func:`hvtrace.paths.image_path` (this name is kept for tui/app.py).


def gdb_argv(
    *,
    elf: Path,
    port: int | None = None,
    core: Path | None = None,
    options: Sequence[str] = (),
    gdb: str = GDB,
) -> list[str]:
    """The gdb command line (pure; unit-tested): symbols, the extension, the target, then the user's own
    gdb options in their order (``-ex``/``-x`` run after the target is set up; ``-nx`` and ``-batch``
    act wherever they are, as gdb reads all options before running any command)."""
    argv = [gdb, "-q"]
    argv += ["-ex", f"source {paths.gdb_extension()}", "-ex", f"file {elf}"]
    if port is not None:
        argv += ["-ex", f"target remote 127.0.0.1:{port}"]
    if core is not None:
        argv += ["-ex", f"core-file {core}"]
    if port is not None or core is not None:
        # the image runs at its link address + a slide (hvtrace.relocation): symbols where it runs
        argv += ["-ex", "hv-symbols"]
    return argv + list(options)


def port_of_ram(ram: Path, proc: Path = Path("/proc")) -> int:
    """The gdbstub port of the QEMU process that maps ``ram`` (from its command line in /proc)."""
    args = qemu_argv_of_ram(ram, proc) or []
    for i, a in enumerate(args[:-1]):
        m = GDB_PORT_RE.match(args[i + 1]) if a == "-gdb" else None
        if m:
            return int(m.group(1))
    raise LaunchError(
        ExitCode.USAGE,
        f"no running QEMU maps RAM file {ram} with a gdbstub (give the port: --port N, "
        "printed by `hvtrace run` as 'hvtrace: gdb port N')",
    )


def run_gdb(
    port: int | None,
    ram: Path | None,
    core: Path | None,
    dump: Path | None,
    elf: Path | None,
    *,
    options: Sequence[str],
) -> int:
    """Run gdb on the target with the user's gdb ``options``; gdb's exit status (128 + N if killed by
    signal N)."""
    chosen = [x for x in (port, ram, core, dump) if x is not None]
    if len(chosen) != 1:
        raise LaunchError(
            ExitCode.USAGE, "give exactly one target: --port N, --ram PATH, --core FILE or --dump PREFIX"
        )
    elf = elf or paths.image_path()
    if not elf.is_file():
        raise LaunchError(ExitCode.USAGE, f"no hypervisor image at {elf} (build it: make -C hv)")
    gdb = require_tool(GDB, "for hvtrace gdb")
    if ram is not None:
        port = port_of_ram(ram)
    if core is not None and not core.is_file():
        raise LaunchError(ExitCode.NO_INPUT, f"no core file {core}")
    with tempfile.TemporaryDirectory(prefix=f"hvtrace-gdb-{os.getpid()}-") as tmp:
        if dump is not None:
            segs = dump_segments(dump)
            if not segs:
                raise LaunchError(ExitCode.USAGE, f"no dump files {dump}.<start hex>")
            core = write_core(segs, Path(tmp) / "ram.core")
        argv = gdb_argv(elf=elf, port=port, core=core, options=options, gdb=gdb)
        return run_foreground(argv)


def run_foreground(argv: Sequence[str]) -> int:
    """Run an interactive program that owns Ctrl-C (gdb: it interrupts the target and stays at the prompt).

    The terminal sends SIGINT to the whole foreground process group, so this process gets it too: it
    must survive it, not raise KeyboardInterrupt and leave gdb orphaned. A no-op handler (not SIG_IGN)
    because an ignored signal stays ignored across exec, and gdb must receive it."""
    previous = signal.signal(signal.SIGINT, lambda _sig, _frame: None)
    try:
        status = subprocess.call(argv)
    finally:
        signal.signal(signal.SIGINT, previous)
    return 128 - status if status < 0 else status
