"""What `hvtrace image` does (its parser: :mod:`hvtrace.commands.image`): build the GRUB ISO and write it
to the given file, never leaving a half-written one."""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

from hvtrace.commands.parser import out
from hvtrace.image import ensure_image, ensure_iso
from hvtrace.launch.guest import launch_options
from hvtrace.trace.output import check_output


def cmd_image(args: argparse.Namespace) -> int:
    hv_parts = (f"console={args.serial}",) if args.serial else ()
    opts = launch_options(args, hv_parts=hv_parts)  # checks the guest's files and command line
    if opts.guest is not None:
        opts.guest.check_grub()
    check_output(args.iso)
    iso = ensure_iso(ensure_image(), opts.hv_cmdline, opts.guest)
    # Copy beside OUT, then rename: OUT is never a half-written ISO.
    fd, tmp_name = tempfile.mkstemp(prefix=f".{args.iso.name}.", dir=args.iso.parent)
    os.close(fd)
    try:
        shutil.copyfile(iso, tmp_name)
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, args.iso)
    finally:
        Path(tmp_name).unlink(missing_ok=True)
    guest = f", guest {opts.guest.name}" if opts.guest is not None else ""
    out(f"wrote {args.iso} ({args.iso.stat().st_size} bytes): command line {opts.hv_cmdline!r}{guest}")
    return 0
