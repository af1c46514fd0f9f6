"""Driver of tests/native/test_gdbstub.c: the hypervisor's gdb stub (packet layer and commands) built
for the host with a fake target (4 CPUs, CPU 2 offline; 64 KiB at 0x100000, "physical" 4 KiB at 0x1000)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

NATIVE = Path(__file__).resolve().parents[1] / "native"
VBASE = 0x100000


def build(out: Path) -> Path:
    """Build test_gdbstub (host gcc, ASan/UBSan) into ``out``."""
    if (shutil.which("gcc") is None or shutil.which("make") is None) and not os.environ.get("CI"):
        pytest.skip("needs gcc and make")
    argv = ["make", "-C", str(NATIVE), f"O={out}", "test_gdbstub"]
    r = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    return out / "test_gdbstub"


def checksum(body: bytes) -> bytes:
    return f"{sum(body) % 256:02x}".encode()


def pkt(body: bytes | str) -> bytes:
    """One frame as sent; ``body`` is taken as already escaped / run-length encoded."""
    raw = body.encode() if isinstance(body, str) else body
    return b"$" + raw + b"#" + checksum(raw)


def frames(out: bytes) -> list[bytes]:
    """The stub's output as tokens: b"+", b"-", and each packet's raw body (its checksum verified)."""
    tokens: list[bytes] = []
    i = 0
    while i < len(out):
        c = out[i : i + 1]
        if c in (b"+", b"-"):
            tokens.append(c)
            i += 1
            continue
        assert c == b"$", (i, out)
        end = out.index(b"#", i)
        body = out[i + 1 : end]
        assert out[end + 1 : end + 3] == checksum(body), out
        tokens.append(body)
        i = end + 3
    return tokens


def unescape(body: bytes) -> bytes:
    return re.sub(rb"\}(.)", lambda m: bytes([m.group(1)[0] ^ 0x20]), body, flags=re.DOTALL)


def talk(exe: Path, data: bytes) -> list[bytes]:
    """Feed ``data`` (gdb's side, acks included) to a fresh stub; it must end at end of input."""
    r = subprocess.run([str(exe)], input=data, capture_output=True, timeout=60, check=False)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    return frames(r.stdout)


def replies(exe: Path, *packets: str | bytes) -> list[bytes]:
    """No-ack mode first, then one reply per packet (the packets' bodies, unescaped)."""
    data = pkt("QStartNoAckMode") + b"+" + b"".join(pkt(p) for p in packets)
    got = talk(exe, data)
    assert got[:2] == [b"+", b"OK"], got
    return [unescape(t) for t in got[2:]]
