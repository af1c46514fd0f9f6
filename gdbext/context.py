"""The context view on every stop at an exit break (gdb glue of context_view.py) and its settings:

set hv context sections exit regs code exits vmcs   (any of them, or all / none)
set hv context exits N                              (records of the CPU's ring; 0 hides them)
set hv context code N                               (instructions at RIP)
hv-context                                          (show it again at the current hit)
"""

from __future__ import annotations

import argparse
import ctypes

import gdb

from hvtrace import abi
from hvtrace.decode.vendor import reason_name

from . import model, target
from .command import HvCommand, bold, emit
from .context_view import SECTIONS, ContextData, ContextSettings, context_lines, gprs_of, parse_sections

HIT_FUNCTION = "hv_break_hit"
settings = ContextSettings()
#: Per CPU: (snapshot seq, the registers of the stop before it, its registers). Showing the same stop
#: again (hv-context) keeps its marks; a new stop compares with the one before.
_history: dict[int, tuple[int, list[int] | None, list[int]]] = {}


def hit_registers() -> tuple[int, int, int]:
    """At a stop at hv_break_hit: (CPU, entry, the record's address) from its arguments."""
    cpu = int(gdb.parse_and_eval("$rdi")) & 0xFFFF_FFFF
    entry = int(gdb.parse_and_eval("$rsi")) & 0xFFFF_FFFF
    return cpu, entry, int(gdb.parse_and_eval("$rdx"))


def gather(cpu: int, rec_addr: int) -> tuple[ContextData, list[str]]:
    """The stop's data (and the exit area of the VMCS / VMCB snapshot) read from the target."""
    _, d = target.discovery()
    rec = model.record_from(target.read(rec_addr, abi.HV_RECORD_SIZE))
    rec.cpu = cpu  # the handler's copy: the ring slot gets cpu and seq, this one may not
    data = ContextData(d.vendor, rec)
    vmcs: list[str] = []
    code_at: int | None = None
    try:
        snap = model.read_snapshot(target.read, d, cpu)
        data.snapshot = snap
        seen = _history.get(cpu)
        data.previous_gprs = seen[1] if seen and seen[0] == snap.seq else (seen[2] if seen else None)
        _history[cpu] = (snap.seq, data.previous_gprs, gprs_of(snap))
        # The exit's RIP through the guest's own page tables; the snapshot's CR3 is the exit's.
        code_at = model.code_address(snap, rec.rip, target.read)
        vmcs = snap.backend.snapshot_view(snap.fields, areas=["exit"])
    except (model.HvError, ValueError) as e:
        data.notes["regs"] = data.notes["vmcs"] = f"no snapshot: {e}"
    data.code = target.disassemble(rec.rip, max(settings.code, 1), at=code_at)
    try:
        ring = model.read_ring(target.read, d, cpu)
        data.ring = ring
        if ring is not None and settings.exits:
            data.recent = model.latest_records(target.read, ring, settings.exits)
        elif ring is None:
            data.notes["exits"] = f"CPU {cpu} has no ring"
    except model.HvError as e:
        data.notes["exits"] = str(e)
    return data, vmcs


def hit_view(sections: tuple[str, ...] | None = None) -> tuple[int, int, str, list[str]]:
    """At a stop at hv_break_hit: (entry, CPU, reason name, the view's lines after its title) with the
    configured sections, or ``sections`` (the TUI's hit screen shows the VMCS / VMCB on its own)."""
    cpu, entry, rec_addr = hit_registers()
    data, vmcs = gather(cpu, rec_addr)
    shown = settings if sections is None else ContextSettings(sections, settings.exits, settings.code)
    lines = context_lines("", data, shown, vmcs)[1:]
    _, d = target.discovery()
    cfg = model.break_config_from(target.read(d.break_config, ctypes.sizeof(abi.HvBreakConfig)))
    if entry >= abi.HV_BREAK_MAX or not cfg.entry[entry].enabled:
        lines.append("  (this break is deleted: the hit was pending from before, another CPU's in all-stop)")
    return entry, cpu, reason_name(data.vendor, data.record.reason), lines


def view() -> list[str]:
    """The context view of the current stop at hv_break_hit: title, sections, what to do next."""
    entry, cpu, reason, lines = hit_view()
    return [
        bold(f"hv-break {entry} hit on CPU {cpu}: {reason}"),
        *lines,
        "  (continue resumes the guest; hv-vmcs / hv-guest show the snapshot; set hv context ...)",
    ]


def at_hit() -> bool:
    try:
        return bool(gdb.selected_frame().name() == HIT_FUNCTION)
    except gdb.error:
        return False


class HvContext(HvCommand):
    """Show the context view of the current exit break's stop again (it prints by itself at each stop).

    Usage: hv-context
    Settings: set hv context sections exit regs code exits vmcs (or all / none),
              set hv context exits N (the CPU's last exits), set hv context code N (instructions)."""

    NAME = "context"

    def run(self, args: argparse.Namespace) -> None:
        if not at_hit():
            raise model.HvError(f"not stopped at {HIT_FUNCTION} (an exit break's hit)")
        emit(view())


class ContextSections(gdb.Parameter):  # type: ignore[misc]
    """The sections of the context view at an exit break's stop: exit regs code exits vmcs, all or none."""

    set_doc = "Set the sections of the hv context view (exit regs code exits vmcs; all; none)."
    show_doc = "Show the sections of the hv context view."

    def __init__(self) -> None:
        super().__init__("hv context sections", gdb.COMMAND_DATA, gdb.PARAM_STRING)
        self.value = " ".join(SECTIONS)

    def get_set_string(self) -> str:
        try:
            settings.sections = parse_sections(str(self.value or ""))
        except ValueError as e:
            self.value = " ".join(settings.sections)
            raise gdb.GdbError(str(e)) from None
        return ""

    def get_show_string(self, svalue: str) -> str:
        return f"hv context sections: {' '.join(settings.sections) or 'none'}."


class ContextCount(gdb.Parameter):  # type: ignore[misc]
    """A count of the context view: the CPU's last exits shown, or the instructions at RIP."""

    def __init__(self, what: str, doc: str) -> None:
        self.set_doc = f"Set how many {doc} the hv context view shows."
        self.show_doc = f"Show how many {doc} the hv context view shows."
        super().__init__(f"hv context {what}", gdb.COMMAND_DATA, gdb.PARAM_ZUINTEGER)
        self.what = what
        self.value = getattr(settings, what)

    def get_set_string(self) -> str:
        setattr(settings, self.what, int(self.value))
        return ""

    def get_show_string(self, svalue: str) -> str:
        return f"hv context {self.what}: {svalue}."


def register_settings() -> None:
    ContextSections()
    ContextCount("exits", "of the CPU's last exits")
    ContextCount("code", "instructions at RIP")
