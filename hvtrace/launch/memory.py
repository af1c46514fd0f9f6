"""Guest RAM sizes: the default with a guest kernel and the parser of a size option. A module of its own,
with no import, so the command line's parsers (every command's, built for any command) read them without
loading the launchers."""

from __future__ import annotations

#: RAM given to a run with a guest when the user chose no size (`hvtrace run/capture/tui --guest`).
GUEST_MIN_MEMORY_MB = 256


def parse_memory(text: str) -> int:
    """'256M', '1G', '512' (MiB) -> MiB. Raises ValueError on anything else or below 16 MiB."""
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    scale = 1
    if t.endswith("G"):
        scale, t = 1024, t[:-1]
    elif t.endswith("M"):
        t = t[:-1]
    if not t.isdigit():
        raise ValueError(f"bad memory size {text!r} (use e.g. 256M or 1G)")
    mib = int(t) * scale
    if mib < 16:
        raise ValueError(f"memory size {text!r} is too small (at least 16M)")
    return mib
