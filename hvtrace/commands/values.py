"""Option value types: each turns a command-line word into a value or one clear argparse error; and
:func:`add_seconds_argument` / :func:`add_symbols_argument`, the one declaration of each of those options."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from hvtrace.launch.memory import parse_memory

BACKEND_NAMES = ("qemu", "bochs")


def backend(text: str) -> str:
    if text not in BACKEND_NAMES:
        raise argparse.ArgumentTypeError(f"unknown backend {text!r} (choose qemu or bochs)")
    return text


def _integer(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer (got {text!r})") from None


def positive_int(text: str) -> int:
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {value})")
    return value


def nonneg_int(text: str) -> int:
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative (got {value})")
    return value


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds (got {text!r})") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive (got {text})")  # argparse names the option
    return value


def timeout(text: str) -> float:
    """`--timeout` of `run`: positive seconds, or 0 for none (a run that only ends when stopped)."""
    try:
        if float(text) == 0:
            return 0.0
    except ValueError:
        pass  # seconds() names the bad word
    return seconds(text)


def add_seconds_argument(
    p: argparse.ArgumentParser,
    flag: str,
    text: str,
    *,
    default: float | None = None,
    convert: Callable[[str], float] = seconds,
) -> None:
    """A duration option (capture --duration, top --interval, tui --timeout, run --timeout with
    ``convert=timeout``): a number of seconds, shown as SECONDS in the help; ``text`` is its help."""
    p.add_argument(flag, type=convert, default=default, metavar="SECONDS", help=text)


def memory(text: str) -> int:
    try:
        return parse_memory(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def tcp_port(option: str) -> Callable[[str], int]:
    """A TCP port number for ``option`` (its name is in the error: --gdb of run, --port of gdb)."""

    def conv(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{option} must be a TCP port number (got {text!r})") from None
        if not 0 < value < 65536:
            raise argparse.ArgumentTypeError(f"{option} port must be 1..65535 (got {value})")
        return value

    return conv


#: UART names of `image --serial` (the hypervisor's console=PORT,BAUD, hv/core/lib/cmdline.c) and
#: the rate of a 16550 at divisor 1.
SERIAL_PORT_NAMES = ("com1", "com2", "com3", "com4")
UART_BASE_BAUD = 115200


def serial_line(text: str) -> str:
    """`image --serial PORT,BAUD` as the hypervisor's console= value: PORT com1..com4 or an I/O port
    in hex (room for the 16550's 8 registers), BAUD a divisor of 115200 (the UART can make no other)."""
    port, sep, baud = text.strip().lower().partition(",")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected PORT,BAUD such as com1,115200 (got {text!r})")
    if port not in SERIAL_PORT_NAMES:
        try:
            number = int(port, 16) if port.startswith("0x") else -1
        except ValueError:
            number = -1
        if not 0 < number <= 0xFFF8:
            raise argparse.ArgumentTypeError(
                f"PORT must be com1..com4 or an I/O port 0x1..0xfff8 in hex (got {port!r})"
            )
        port = f"{number:#x}"
    rate = int(baud) if baud.isdigit() else 0
    if rate == 0 or UART_BASE_BAUD % rate or UART_BASE_BAUD // rate > 0xFFFF:
        raise argparse.ArgumentTypeError(
            f"BAUD must divide 115200 (115200, 57600, 38400, 19200, 9600, ...; got {baud!r})"
        )
    return f"{port},{rate}"


def add_symbols_argument(parser: argparse.ArgumentParser) -> None:
    """``--symbols FILE``, shared by report, export and the TUI."""
    parser.add_argument(
        "--symbols",
        type=Path,
        metavar="FILE",
        help="guest kernel symbols (vmlinux, System.map or a /proc/kallsyms dump): RIPs as symbol+0xoff; "
        "the KASLR slide is found from the trace",
    )
