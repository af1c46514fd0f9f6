"""`hvtrace image --serial PORT,BAUD`: the value the hypervisor's console= option gets, or one argparse
error (the same rules as hv/core/lib/cmdline.c, whose live check is tests/integration/test_image_iso.py)."""

from __future__ import annotations

import argparse

import pytest

from hvtrace.commands.values import serial_line


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("com1,115200", "com1,115200"),
        ("COM4,9600", "com4,9600"),
        ("0xE010,57600", "0xe010,57600"),
        ("0x3f8,2", "0x3f8,2"),  # divisor 57600: the slowest rate a 16-bit divisor gives
        ("0xfff8,115200", "0xfff8,115200"),
    ],
)
def test_accepted_values_are_normalised(text: str, value: str) -> None:
    assert serial_line(text) == value


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("com1", "expected PORT,BAUD"),
        ("com5,9600", "PORT must be"),
        ("0x0,9600", "PORT must be"),
        ("0xfff9,9600", "PORT must be"),  # no room for the UART's 8 registers
        ("1016,9600", "PORT must be"),  # a port is written in hex, with 0x
        ("0xzz,9600", "PORT must be"),
        ("com1,1000", "BAUD must divide 115200"),
        ("com1,1", "BAUD must divide 115200"),  # divisor 115200 does not fit 16 bits
        ("com1,0", "BAUD must divide 115200"),
        ("com1,fast", "BAUD must divide 115200"),
        ("com1,230400", "BAUD must divide 115200"),
    ],
)
def test_refused_values_say_why(text: str, why: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=why):
        serial_line(text)
