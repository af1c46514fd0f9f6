"""Real records read two ways word the same: gdb's hv-exits (through the gdb stub) and the TUI's log line
(tui.fmt, from the ring in QEMU's RAM file, read by the capture's RingReader) while gdb holds the
guest stopped. The unit test tests/unit/test_record_text.py covers every kind with manual values;
this one covers the paths real records take (AMD SVM back end, storm=1).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest

from hvtrace import paths
from hvtrace.gdbmi import Gdb
from hvtrace.launch.qemu import QemuSession
from hvtrace.trace.discovery import discover
from hvtrace.trace.reader import RingReader
from hvtrace.trace.sources import SharedRamSource
from tui.fmt import HEADER, format_record

pytestmark = [pytest.mark.slow, pytest.mark.qemu]
LINE_RE = re.compile(r"^CPU0 #(\d+) \S+ rip=(0x[0-9a-f]+) ?(.*)$", re.MULTILINE)
N = 40
#: Words gdb's line ends with for record flags (gdbext/model.py record_line); the TUI shows none.
FLAG_WORDS = ("BREAK", "INJECTED", "DROPS-BEFORE")


def without_flags(rest: str) -> str:
    words = rest.split(" ")
    while words and words[-1] in FLAG_WORDS:
        words.pop()
    return " ".join(words)


@pytest.fixture(scope="module")
def stopped() -> Iterator[tuple[QemuSession, Gdb]]:
    """A one-CPU storm run, held stopped by gdb (target remote stops every vCPU)."""
    session = QemuSession(cpus=1, memory_mb=128, cmdline="storm=1", timeout=300)
    gdb: Gdb | None = None
    try:
        session.start()
        deadline = time.monotonic() + 60
        while not any("storm:" in line for line in session.lines):
            assert time.monotonic() < deadline, "no storm line within 60 s"
            time.sleep(0.05)
        gdb = Gdb()
        gdb.load()
        gdb.ok(f"target remote 127.0.0.1:{session.gdb_port}")
        yield session, gdb
    finally:
        if gdb is not None:
            gdb.close()
        session.close()


def test_hv_exits_and_the_tui_log_word_the_same_records(stopped: tuple[QemuSession, Gdb]) -> None:
    session, gdb = stopped
    text = gdb.ok(f"hv-exits -n {N} --cpu 0 --no-disasm")
    by_seq = {int(seq): (int(rip, 16), rest) for seq, rip, rest in LINE_RE.findall(text)}
    assert len(by_seq) == N, text
    assert session.ram_path is not None
    src = SharedRamSource(session.ram_path, writable=False)
    try:
        disc = discover(src, elf=paths.image_path())
        recs = RingReader(src, disc.rings[0]).poll()
    finally:
        src.close()
    assert disc.vendor_name == "SVM"
    col = HEADER.index("detail")
    matched = 0
    for rec in recs:
        seen = by_seq.get(int(rec["seq"]))
        if seen is None:
            continue
        rip, gdb_rest = seen
        assert rip == int(rec["rip"])
        tui_detail = format_record(rec, disc.vendor, 0, None)[col:]
        assert without_flags(gdb_rest) == tui_detail
        matched += 1
    assert matched == N, (matched, sorted(by_seq)[:3], recs["seq"][-3:])
