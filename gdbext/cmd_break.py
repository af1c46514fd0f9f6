"""hv-break: exit breakpoints evaluated inside the hypervisor; gdb stops only at hv_break_hit."""

from __future__ import annotations

import argparse
import ctypes

import gdb

from hvtrace import abi

from . import break_args, context, model, target
from .command import HvCommand, emit
from .options import OptionParser

HIT_FUNCTION = context.HIT_FUNCTION
#: The table entries this gdb session armed: deleted when it detaches, disconnects or exits (release()).
_owned: set[int] = set()
#: gdb's hooks that run before the command, while the target can still be written (gdb 13: no Python
#: event fires before a detach; gdb.events.gdb_exiting fires before quit's detach, batch mode's too).
RELEASE_HOOKS = ("hook-detach", "hook-disconnect")


def _discovery() -> abi.HvDiscovery:
    _, d = target.discovery()
    if not d.break_config:
        raise model.HvError("hv_trace.break_config is 0: this hypervisor has no exit breakpoints yet")
    return d


def _config() -> tuple[abi.HvDiscovery, abi.HvBreakConfig]:
    d = _discovery()
    return d, model.break_config_from(target.read(d.break_config, ctypes.sizeof(abi.HvBreakConfig)))


def _publish(d: abi.HvDiscovery, cfg: abi.HvBreakConfig, changed: list[int]) -> None:
    """Write ``cfg``'s ``changed`` entries and re-arm, in the order abi.h's protocol needs."""
    for offset, data in model.publish_writes(cfg, changed):
        target.write(d.break_config + offset, data)


def _generation() -> int:
    """The break table's generation as published now (abi.h hv_break_config)."""
    offset = abi.HvBreakConfig.generation.offset
    return int.from_bytes(target.read(_discovery().break_config + offset, 4), "little")


class HitBreakpoint(gdb.Breakpoint):  # type: ignore[misc]
    """gdb's one breakpoint at hv_break_hit. Two CPUs may match at once: the one that stops second was
    parked between its match and its call, and a tool may have deleted or rewritten the table since
    (breaks.c drops such a hit, but only up to a few instructions before the call). Its generation
    argument (RCX) then is not the table's: gdb resumes it instead of reporting a break nobody holds."""

    def stop(self) -> bool:
        try:
            gen = int(gdb.parse_and_eval("$rcx")) & 0xFFFF_FFFF
            with target.physical():
                now = _generation()
        except (gdb.error, model.HvError):
            return True  # cannot tell: a stop too many is better than a lost one
        if gen in (0, now):  # 0: a table published without generations (abi.h)
            return True
        cpu = int(gdb.parse_and_eval("$rdi")) & 0xFFFF_FFFF
        gdb.write(f"hv-break: CPU {cpu} matched table generation {gen}, rewritten since ({now}): resumed\n")
        return False


def _hit_breakpoint() -> gdb.Breakpoint:
    for bp in gdb.breakpoints():
        if isinstance(bp, HitBreakpoint) and bp.is_valid():
            return bp
    if gdb.lookup_global_symbol(HIT_FUNCTION) is None:
        raise model.HvError(f"symbol {HIT_FUNCTION} not found: load the hypervisor's ELF (file hvtrace.elf)")
    return HitBreakpoint(HIT_FUNCTION)


class HvBreakCmd(HvCommand):
    """Arm an exit breakpoint inside the hypervisor; list or delete them.

    Usage: hv-break REASON [--cpu N] [--msr X | --cr N | --port P | --leaf L] [--gpa A-B]
                    [--ignore N] [--trace] [if EXPR]
           hv-break list
           hv-break delete N|all
           hv-break release     (delete the breaks this gdb session armed; runs before detach)

    REASON is a vendor-neutral kind (cpuid, msr_read, msr_write, cr_access, vmcall, invd, exception,
    stage2_fault, io, hlt, xsetbv, ...), a native reason name of the running back end (VMX: CPUID,
    EPT_VIOLATION, ...; SVM: CPUID, NPF, ...) or 'any'. --msr/--cr/--port/--leaf match the exit's first
    argument (MSR index, CR number, port, CPUID leaf); --gpa the guest-physical address (A or A-B).

    if EXPR: up to 4 comparisons joined by && (OPERAND OP NUMBER; ops == != < <= > >= and & for a
    mask), evaluated by the hypervisor. Operands: rax..r15 (not rsp) as the guest resumes with them
    (after the handler: CPUID's outputs), and the exit's arg0 arg1 qual gpa rip cr3 (leaf, subleaf,
    msr, port, cr name arg0/arg1). --ignore N: do not stop for the first N matches (counted).
    --trace (or hv-trace-point): count matching exits, never stop.

    The entry is written into the hypervisor's break table (hv_trace.break_config, up to 8 entries) while
    the VM is stopped, and gdb keeps one breakpoint at hv_break_hit. A matching exit snapshots the CPU and
    stops there: hvtrace prints the exit, the guest registers and the instruction. `continue` resumes the
    guest. Non-matching exits never reach gdb. The breaks belong to this gdb session: they are deleted
    when it detaches, disconnects or quits.

    Examples:
      (gdb) hv-break cpuid --leaf 1
      (gdb) hv-break cpuid if leaf == 0 && rbx == 0x68747541
      (gdb) hv-break msr_write --msr 0xc0000080 --cpu 1 --ignore 2
      (gdb) hv-break stage2_fault --gpa 0xfee00000-0xfee00fff
      (gdb) hv-trace-point cpuid --leaf 7
      (gdb) hv-break list
      (gdb) hv-break delete all"""

    NAME = "break"

    def declare(self, p: OptionParser) -> None:
        break_args.declare(p)

    def words(self) -> list[str]:
        return ["list", "delete", "release", *self.parser.option_words(), "any", *model.reason_words(0)]

    def run(self, args: argparse.Namespace) -> None:
        words = args.words
        if words and words[0] == "list":
            self.list_breaks()
        elif words and words[0] == "delete":
            self.delete(words[1:])
        elif words == ["release"]:
            release_quietly()  # what the detach hooks run: it must never fail
        else:
            self.arm(args)

    def arm(self, args: argparse.Namespace) -> None:
        index, what, bp = arm(args)
        emit([f"hv-break {index}: {what} (gdb breakpoint {bp} at {HIT_FUNCTION})"])

    def list_breaks(self) -> None:
        cfg, entries = table()
        hit = any(cfg.entry[i].hits for i in range(abi.HV_BREAK_MAX))
        last = f"entry {cfg.last_hit} on CPU {cfg.last_cpu}" if hit else "none"
        lines = [f"{cfg.armed} armed (table of {abi.HV_BREAK_MAX}); last hit: {last}"]
        lines.extend(f"  {i}: {what}  hits {hits}" for i, what, hits in entries)
        if not entries:
            lines.append("  no exit breaks")
        emit(lines)

    def delete(self, args: list[str]) -> None:
        if len(args) != 1:
            raise model.HvError("usage: hv-break delete N|all")
        deleted, armed = delete(args[0])
        emit([f"deleted {deleted if args[0] != 'all' else 'all'}; {armed} armed"])


class HvTracePointCmd(HvBreakCmd):
    """Count matching exits inside the hypervisor without stopping (hv-break --trace).

    Usage: hv-trace-point REASON [hv-break's options] [if EXPR]
    The count shows in hv-break list ("hits N"); hv-break delete N removes it. See help hv-break."""

    NAME = "trace-point"

    def arm(self, args: argparse.Namespace) -> None:
        args.trace = True
        super().arm(args)


# The steps behind hv-break, shared with its MI twins (mi_commands.py): data in, data out.
def arm(args: argparse.Namespace) -> tuple[int, str, int]:
    """Arm an exit break (``args`` parsed by break_args): (its table index, what it matches, the gdb
    breakpoint at hv_break_hit)."""
    d, cfg = _config()
    entry = break_args.entry(d.vendor, d.cpu_count, args)
    index = model.free_slot(cfg)
    bp = _hit_breakpoint()
    cfg.entry[index] = entry
    _publish(d, cfg, [index])
    _owned.add(index)
    return index, break_args.describe(d.vendor, entry), int(bp.number)


def table() -> tuple[abi.HvBreakConfig, list[tuple[int, str, int]]]:
    """The break table and its enabled entries: (index, what it matches, hits)."""
    d, cfg = _config()
    entries = [
        (i, break_args.describe(d.vendor, e), int(e.hits))
        for i, e in enumerate(cfg.entry[: abi.HV_BREAK_MAX])
        if e.enabled
    ]
    return cfg, entries


def delete(which: str) -> tuple[int, int]:
    """Delete entry ``which`` (a number or 'all'): (entries deleted, entries still armed)."""
    d, cfg = _config()
    if which == "all":
        indexes = list(range(abi.HV_BREAK_MAX))
    else:
        n = model.parse_int(which, "break number")
        if n >= abi.HV_BREAK_MAX or not cfg.entry[n].enabled:
            raise model.HvError(f"no exit break {n} (see hv-break list)")
        indexes = [n]
    for i in indexes:
        cfg.entry[i] = abi.HvBreak()
    _publish(d, cfg, indexes)
    _owned.difference_update(indexes)
    return len(indexes), int(cfg.armed)


def release() -> int:
    """Delete the entries this gdb session armed (the others are another session's): how many."""
    if not _owned:
        return 0
    d, cfg = _config()
    mine = [i for i in sorted(_owned) if cfg.entry[i].enabled]
    for i in mine:
        cfg.entry[i] = abi.HvBreak()
    _publish(d, cfg, mine)
    _owned.clear()
    return len(mine)


def release_quietly(*_event: object) -> None:
    """release() from a hook or an event: never raises (a failing hook would cancel the detach)."""
    try:
        with target.physical():
            n = release()
        if n:
            gdb.write(f"hv-break: deleted {n} exit break{'s' if n > 1 else ''} of this session\n")
    except (model.HvError, gdb.error) as e:
        gdb.write(f"hv-break: could not delete this session's exit breaks: {e}\n")


def install_release_hooks() -> None:
    """Breaks belong to the session: released before detach / disconnect and when gdb exits."""
    if hasattr(gdb.events, "gdb_exiting"):  # gdb >= 13
        gdb.events.gdb_exiting.connect(release_quietly)
    for hook in RELEASE_HOOKS:
        try:
            mine = "hv-break release" in gdb.execute(f"show user {hook}", to_string=True)
            if not mine:  # the user's own hook (a .gdbinit): kept, and said how to release by hand
                gdb.write(f"hv-break: {hook} is yours; add 'hv-break release' to it to delete exit breaks\n")
                continue
        except gdb.error:
            pass  # not defined yet
        gdb.execute(f"define {hook}\nhv-break release\nend", to_string=True)


def hit() -> tuple[int, int, str, list[str]]:
    """At a stop at hv_break_hit: (entry, CPU, reason name, the lines of the hit screen after its
    title: the exit, the guest registers, the code at RIP, the CPU's last exits; context.py)."""
    return context.hit_view(("exit", "regs", "code", "exits"))


def on_stop(event: object) -> None:
    bps = getattr(event, "breakpoints", None) or []
    if not any(getattr(bp, "location", None) == HIT_FUNCTION for bp in bps):
        return
    try:
        with target.physical():
            emit(context.view())
    except (model.HvError, gdb.error) as e:
        gdb.write(f"hv-break: cannot show the hit: {e}\n")
