"""`hvtrace image`: write the bootable GRUB ISO (the one the Bochs back end boots) to a file, for a USB
stick, a CD or a PXE server: the hypervisor, its command line, and optionally a guest kernel and initrd.
``--serial PORT,BAUD`` moves the hypervisor's console to the UART a real machine has (console=). The
options; the writing is :mod:`hvtrace.commands.image_handler`, imported when the command runs."""

from __future__ import annotations

from pathlib import Path

from hvtrace.commands import values
from hvtrace.commands.parser import Subcommands, add_command
from hvtrace.commands.session_options import add_guest_arguments


def register(sub: Subcommands) -> None:
    image = add_command(sub, "image", "hvtrace.commands.image_handler:cmd_image")
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
