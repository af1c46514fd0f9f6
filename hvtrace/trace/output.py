"""Check an output path before any work starts (before a capture boots an emulator, before an export
reads its input): one TraceError(CANT_CREATE) line instead of a traceback after the work is done."""

from __future__ import annotations

import os
from pathlib import Path

from hvtrace.exitcodes import ExitCode
from hvtrace.trace.errors import TraceError


def check_output(path: Path, *, inputs: tuple[Path, ...] = ()) -> None:
    """Raise TraceError(CANT_CREATE) unless ``path`` can be written: not a directory, its directory
    exists, the file can be opened for writing (tried: permission checks alone are wrong for root and
    read-only file systems), and it is none of ``inputs`` (writing would destroy what is being read)."""
    path = Path(path)
    if path.is_dir():
        raise TraceError(ExitCode.CANT_CREATE, f"cannot write {path}: it is a directory")
    parent = path.parent
    if not parent.exists():
        raise TraceError(ExitCode.CANT_CREATE, f"cannot write {path}: directory {parent} does not exist")
    if not parent.is_dir():
        raise TraceError(ExitCode.CANT_CREATE, f"cannot write {path}: {parent} is not a directory")
    existed = path.exists()
    for src in inputs:
        if existed and src.exists() and os.path.samefile(src, path):
            raise TraceError(ExitCode.CANT_CREATE, f"cannot write {path}: it is the input file")
    try:
        with path.open("ab"):  # "a": an existing file is not truncated by the check
            pass
    except OSError as e:
        raise TraceError(ExitCode.CANT_CREATE, f"cannot write {path}: {e.strerror}") from None
    if not existed:
        path.unlink(missing_ok=True)
