"""The context view at an exit break's stop (pwndbg / gef style), built from data: no gdb here, so unit
tests run it in the venv. gdbext/context.py fetches the data and keeps the settings.

Sections, each switchable (``set hv context sections``): the exit decoded, the guest registers with
those changed since this CPU's previous stop marked, the instructions at RIP, the last N exits of that
CPU from its ring, and the VMCS / VMCB fields of the exit area.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from hvtrace.abi import HvRecord

from .model import GPR_NAMES, RingState, Snapshot, control_line, record_line

SECTIONS = ("exit", "regs", "code", "exits", "vmcs")
RULE_WIDTH = 100


@dataclass
class ContextSettings:
    sections: tuple[str, ...] = SECTIONS
    exits: int = 8  # records of the CPU's ring
    code: int = 4  # instructions at RIP


@dataclass
class ContextData:
    """What one stop shows; None / [] for what could not be read (the reason is in ``notes``)."""

    vendor: int
    record: HvRecord
    snapshot: Snapshot | None = None
    previous_gprs: Sequence[int] | None = None  # this CPU's registers at its previous stop
    code: list[str] = field(default_factory=list)
    ring: RingState | None = None
    recent: list[HvRecord] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)  # section -> why it is empty


def parse_sections(text: str) -> tuple[str, ...]:
    """``exit regs code`` / ``exit,regs`` / ``all`` / ``none`` -> the sections, or ValueError."""
    words = [w for w in text.replace(",", " ").split() if w]
    if words == ["all"]:
        return SECTIONS
    if words in ([], ["none"]):
        return ()
    unknown = [w for w in words if w not in SECTIONS]
    if unknown:
        raise ValueError(
            f"unknown context section {unknown[0]!r} (sections: {' '.join(SECTIONS)}, all, none)"
        )
    return tuple(s for s in SECTIONS if s in words)


def rule(title: str) -> str:
    return f"── {title} " + "─" * max(3, RULE_WIDTH - len(title) - 4)


def gprs_of(s: Snapshot) -> list[int]:
    gprs = list(s.gpr)
    rax = s.register("RAX")
    if rax is not None:
        gprs[0] = rax  # SVM keeps guest RAX in the VMCB, not in the exit frame
    return gprs


def register_lines(s: Snapshot, previous: Sequence[int] | None, mark: str = "*") -> list[str]:
    """GPRs four a line, each changed since ``previous`` followed by ``mark``; control registers."""
    gprs = gprs_of(s)
    cells = []
    for i, v in enumerate(gprs):
        changed = previous is not None and i < len(previous) and previous[i] != v
        cells.append(f"{GPR_NAMES[i]:>3} {v:#018x}{mark if changed else ' ' * len(mark)}")
    return [*(" ".join(cells[row : row + 4]).rstrip() for row in range(0, 16, 4)), control_line(s)]


def ring_note(ring: RingState, hit: HvRecord) -> str | None:
    """Why the ring's newest records may not be the exits just before the break."""
    full = ring.head - ring.tail >= ring.capacity
    if hit.seq == 0 or (full and ring.dropped):
        return (
            f"ring full, {ring.dropped} newer exits dropped (nobody reads the ring): these are the newest "
            "records it holds, not the exits just before the break"
        )
    return None


def exits_lines(vendor: int, recent: Sequence[HvRecord], hit: HvRecord) -> list[str]:
    """The CPU's last records, oldest first; ``>`` marks the exit that hit."""
    return [f"{'>' if hit.seq and r.seq == hit.seq else ' '} {record_line(vendor, r)}" for r in recent]


def context_lines(title: str, data: ContextData, settings: ContextSettings, vmcs: list[str]) -> list[str]:
    """The whole view: ``title``, then each enabled section. ``vmcs``: the exit area of hv-vmcs."""
    lines = [title]
    rec = data.record
    for section in settings.sections:
        note = data.notes.get(section)
        if section == "exit":
            lines += [rule("exit"), f"  {record_line(data.vendor, rec)}"]
        elif section == "regs":
            first = data.previous_gprs is None
            why = "first stop on this CPU" if first else "* changed since this CPU's previous stop"
            lines.append(rule(f"guest registers as the guest resumes (after the handler; {why})"))
            if data.snapshot is not None:
                lines += [f"  {x}" for x in register_lines(data.snapshot, data.previous_gprs)]
        elif section == "code":
            lines += [rule("code at the exit's RIP"), *(f"  {x}" for x in data.code)]
        elif section == "exits":
            lines.append(rule(f"last {settings.exits} exits of CPU {rec.cpu} (oldest first)"))
            if data.ring is not None and (ring_why := ring_note(data.ring, rec)):
                lines.append(f"  ({ring_why})")
            lines += [f"  {x}" for x in exits_lines(data.vendor, data.recent, rec)]
        elif section == "vmcs":
            lines += [rule("VMCS / VMCB exit fields (snapshot at the hit)"), *(f"  {x}" for x in vmcs)]
        if note:
            lines.append(f"  ({note})")
    return lines
