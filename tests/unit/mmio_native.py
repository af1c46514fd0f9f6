"""Driver of tests/native/test_mmio.c (the MMIO decoder and emulator built natively): one persistent
process, one case per line in, one ``key=value`` result line out."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

NATIVE = Path(__file__).resolve().parents[1] / "native"


class MmioDriver:
    def __init__(self, exe: Path) -> None:
        self.proc = subprocess.Popen(
            [str(exe)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def run(self, **case: object) -> dict[str, str]:
        """Run one case; ints are sent in hex, lists as repeated keys, spaces in 'bytes' dropped."""
        tokens: list[str] = []
        for key, value in case.items():
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, int):
                    text = f"{item:x}"
                else:
                    text = str(item).replace(" ", "") if key == "bytes" else str(item)
                tokens.append(f"{key}={text}")
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(" ".join(tokens) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:  # the driver died: a sanitizer report or an abort() on a broken promise
            assert self.proc.stderr is not None
            raise AssertionError(f"test_mmio died on {tokens}: {self.proc.stderr.read()}")
        fields = dict(tok.split("=", 1) for tok in line.split())
        assert "error" not in fields, fields
        return fields

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        rc = self.proc.wait(timeout=30)
        assert rc == 0, rc


def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MmioDriver]:
    """Build tests/native's test_mmio (host gcc, ASan/UBSan) and keep it running for a module."""
    if (shutil.which("gcc") is None or shutil.which("make") is None) and not os.environ.get("CI"):
        pytest.skip("needs gcc and make")
    out = tmp_path_factory.mktemp("mmio")
    build = subprocess.run(
        ["make", "-C", str(NATIVE), f"O={out}", "test_mmio"], capture_output=True, text=True, check=False
    )
    assert build.returncode == 0, build.stdout + build.stderr
    drv = MmioDriver(out / "test_mmio")
    yield drv
    drv.close()


# ------------------------------------------------- helpers of the emulator tests (test_mmio_emul*.py)
CF, PF, AF, ZF, SF, DF, OF = 0x1, 0x4, 0x10, 0x40, 0x80, 0x400, 0x800
R1 = 0x2  # the reserved bit 1
ALL = CF | PF | AF | ZF | SF | OF


def emul(drv: MmioDriver, bits: int, code: str, **kw: object) -> dict[str, str]:
    kw.setdefault("rip", 0x1000)
    return drv.run(mode="emul", bits=bits, bytes=code, **kw)


def h(value: int) -> str:
    return f"{value:x}"


def dword(value: int) -> str:
    return value.to_bytes(4, "little").hex()


def done(got: dict[str, str], length: int, rip: int = 0x1000) -> None:
    """Performed and stepped over; nothing injected by the emulator itself."""
    assert got["status"] == "done", got
    assert (got["len"], got["advanced"]) == (str(length), str(length)), got
    assert got["rip"] == h(rip + length), got
    assert got["injected"] == "0", got
