"""The exit-break table written through a QEMU session's RAM file, as gdbext publishes it (hv-break),
for benchmarks that run with no gdb attached or with gdb busy stepping."""

from __future__ import annotations

import ctypes
import sys

from hvtrace import abi, paths
from hvtrace.trace.discovery import Discovery
from hvtrace.trace.sources import SharedRamSource

sys.path.insert(0, str(paths.repo_root()))
from gdbext import break_args, model


def arm(src: SharedRamSource, d: Discovery, spec: str | None) -> None:
    """Entry 0 = ``spec`` (None: the table empty), published as gdbext publishes it (abi.h's protocol)."""
    base = int(d.header.break_config)
    cfg = model.break_config_from(src.read(base, ctypes.sizeof(abi.HvBreakConfig)))
    entry = abi.HvBreak()
    if spec is not None:
        entry = break_args.build_break(d.vendor, d.cpu_count, spec.split())
    cfg.entry[0] = entry
    for offset, data in model.publish_writes(cfg, [0]):
        src.write(base + offset, data)
