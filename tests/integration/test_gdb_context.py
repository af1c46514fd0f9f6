"""The context view at an exit break's stop (real QEMU, SVM, CPUID storm on 2 CPUs; real gdb over MI):
the exit, the registers with changes marked, the code at RIP, the CPU's last exits from its ring, the
VMCB's exit fields; `set hv context ...` switches sections and sizes; hv-context shows it again."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from hvtrace.gdbmi import Gdb, GdbError
from hvtrace.launch.qemu import QemuSession
from tests.integration.test_gdb_break_conditions import stop_at, storm_with_gdb

pytestmark = [pytest.mark.slow, pytest.mark.qemu]
EXIT_LINE_RE = re.compile(r"^  ([> ]) CPU(\d+) #(\d+) (\S+)", re.MULTILINE)


@pytest.fixture(scope="module")
def live() -> Iterator[tuple[QemuSession, Gdb]]:
    yield from storm_with_gdb("hv-break cpuid --leaf 1 --cpu 1")


def section(text: str, title: str) -> str:
    """The lines of one section of the view (up to the next rule)."""
    start = text.index(f"── {title}")
    rest = text[start:].split("\n", 1)[1]
    return rest.split("── ", 1)[0]


def test_context_view_at_a_stop_shows_every_section(live: tuple[QemuSession, Gdb]) -> None:
    _, gdb = live
    text = stop_at(gdb, 0)
    assert "hv-break 0 hit on CPU 1: CPUID" in text
    assert re.search(
        r"CPU1 (#\d+ )?CPUID\(0x72\)/CPUID rip=0x[0-9a-f]+ leaf 0x1 subleaf", section(text, "exit")
    )
    regs = section(text, "guest registers")
    assert re.search(r"RBX 0x[0-9a-f]{16}", regs), regs
    assert "CR3 0x" in regs, regs
    assert re.search(r"0x[0-9a-f]+: 0f a2 +cpuid", section(text, "code at the exit's RIP")), text
    exits = section(text, "last 8 exits of CPU 1")
    lines = EXIT_LINE_RE.findall(exits)
    assert len(lines) == 8, exits
    assert {cpu for _, cpu, _, _ in lines} == {"1"}, exits  # that CPU's ring only
    seqs = [int(seq) for _, _, seq, _ in lines]
    assert seqs == list(range(seqs[0], seqs[0] + 8)), exits  # consecutive, oldest first
    if "ring full" in exits:
        # nobody reads the ring and it drops the newest: said, since these are not the latest exits
        assert "newer exits dropped" in exits
    else:
        # the ring keeps the newest: the hit is the last record, marked
        assert lines[-1][0] == ">", exits
    vmcb = section(text, "VMCS / VMCB exit fields")
    assert re.search(r"EXITCODE\s+\+070\s+0x0+72", vmcb), vmcb


def test_second_stop_marks_the_registers_that_changed(live: tuple[QemuSession, Gdb]) -> None:
    _, gdb = live
    text = stop_at(gdb, 0)
    regs = section(text, "guest registers")
    assert "changed since this CPU's previous stop" in regs or "changed since" in text
    changed = re.findall(r"(R\w+) 0x[0-9a-f]{16}\*", regs)
    assert changed, regs  # the storm's loop counter at least
    again = gdb.ok("hv-context")  # the same stop again: the same marks
    assert re.findall(r"(R\w+) 0x[0-9a-f]{16}\*", section(again, "guest registers")) == changed


def test_set_hv_context_switches_sections_and_sizes(live: tuple[QemuSession, Gdb]) -> None:
    _, gdb = live
    gdb.ok("set hv context sections exit,exits")
    gdb.ok("set hv context exits 3")
    try:
        assert "hv context sections: exit exits." in gdb.ok("show hv context sections")
        text = stop_at(gdb, 0)
        assert "── exit" in text
        assert "── guest registers" not in text
        assert "── code" not in text
        assert len(EXIT_LINE_RE.findall(section(text, "last 3 exits of CPU 1"))) == 3
        with pytest.raises(GdbError, match="unknown context section 'bogus'"):
            gdb.ok("set hv context sections exit bogus")
        assert "hv context sections: exit exits." in gdb.ok("show hv context sections")
    finally:
        gdb.ok("set hv context sections all")
        gdb.ok("set hv context exits 8")
