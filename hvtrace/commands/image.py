"""`hvtrace image`: write the bootable GRUB ISO (the one the Bochs back end boots) to a file, for a USB
stick, a CD or a PXE server: the hypervisor, its command line, and optionally a guest kernel and initrd.
``--serial PORT,BAUD`` moves the hypervisor's console to the UART a real machine has (console=)."""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

from hvtrace.commands import values
from hvtrace.commands.parser import Subcommands, add_command, out
from hvtrace.commands.session_options import add_guest_arguments
from hvtrace.image import ensure_image, ensure_iso
from hvtrace.launch.guest import launch_options
from hvtrace.trace.output import check_output


def register(sub: Subcommands) -> None:
    image = add_command(sub, "image", cmd_image)
    image.add_argument("--iso", type=Path, required=True, metavar="OUT", help="the ISO file to write")
    add_guest_arguments(image)
    image.add_argument(
        "--serial",
        type=values.serial_line,
        metavar="PORT,BAUD",
        help="the UART of the hypervisor's console and status line: com1..com4 or an I/O port in hex "
        "(a PCI serial card's), and a baud rate that divides 115200 (default com2,115200; kernel "
        "command line console=PORT,BAUD)",
    )


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
