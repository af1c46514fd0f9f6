"""The context view's pure parts: section settings, changed-register marks, the ring's caveat."""

from __future__ import annotations

import pytest

from gdbext.context_view import (
    SECTIONS,
    ContextData,
    ContextSettings,
    context_lines,
    parse_sections,
    register_lines,
    ring_note,
)
from gdbext.model import RingState, Snapshot
from hvtrace.abi import HvRecord

SVM = 2


def snapshot(gpr: list[int]) -> Snapshot:
    return Snapshot(seq=2, vendor=SVM, cpu=1, why=2, flags=0, exit_reason=0x72, gpr=tuple(gpr), fields=[])


def test_sections_parse_in_display_order_and_refuse_unknown_words() -> None:
    assert parse_sections("vmcs, exit regs") == ("exit", "regs", "vmcs")
    assert parse_sections("all") == SECTIONS
    assert parse_sections("none") == parse_sections("") == ()
    with pytest.raises(ValueError, match="unknown context section 'stack'"):
        parse_sections("exit stack")


def test_registers_changed_since_the_previous_stop_are_marked() -> None:
    now = list(range(16))
    before = list(range(16))
    before[7] = 99  # RDI changed
    lines = register_lines(snapshot(now), before)
    assert "RDI 0x0000000000000007*" in lines[1]
    assert "RSI 0x0000000000000006 " in lines[1]
    assert not any("*" in line for line in register_lines(snapshot(now), None))  # first stop: no marks


def test_a_full_ring_that_dropped_the_newest_says_so() -> None:
    hit = HvRecord(seq=0, cpu=1)
    full = RingState(cpu=1, addr=0, head=4096, tail=0, dropped=5, capacity=4096, enabled=1)
    assert "5 newer exits dropped" in (ring_note(full, hit) or "")
    kept = RingState(cpu=1, addr=0, head=9000, tail=8990, dropped=0, capacity=4096, enabled=1)
    assert ring_note(kept, HvRecord(seq=9000, cpu=1)) is None
    data = ContextData(SVM, HvRecord(seq=9000, cpu=1, kind=1, reason=0x72), ring=kept)
    data.recent = [
        HvRecord(seq=8999, cpu=1, kind=1, reason=0x72),
        HvRecord(seq=9000, cpu=1, kind=1, reason=0x72),
    ]
    text = "\n".join(context_lines("title", data, ContextSettings(sections=("exits",), exits=2), []))
    assert "last 2 exits of CPU 1" in text
    assert "  > CPU1 #9000 " in text
    assert "    CPU1 #8999 " in text
