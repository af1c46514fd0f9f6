"""The exit-break table written through a QEMU session's RAM file, as gdbext publishes it (hv-break),
for benchmarks that run with no gdb attached or with gdb busy stepping."""

from __future__ import annotations

import sys

from hvtrace import abi, paths
from hvtrace.trace.discovery import Discovery
from hvtrace.trace.sources import SharedRamSource

sys.path.insert(0, str(paths.repo_root()))
from gdbext import break_args, model


def arm(src: SharedRamSource, d: Discovery, spec: str | None) -> None:
    """Entry 0 = ``spec`` (None: the table empty), published as gdbext publishes it."""
    base = int(d.header.break_config)
    armed_at = base + abi.HvBreakConfig.armed.offset
    src.write(armed_at, bytes(4))  # disarm first
    entry = abi.HvBreak()
    if spec is not None:
        entry = break_args.build_break(d.vendor, d.cpu_count, spec.split())
    src.write(base + model.break_entry_offset(0), bytes(entry))
    kinds = model.kinds_mask([entry])
    src.write(base + abi.HvBreakConfig.kinds.offset, kinds.to_bytes(4, "little"))
    src.write(armed_at, (1 if spec is not None else 0).to_bytes(4, "little"))
