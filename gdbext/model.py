"""What the hv-* commands show, computed from bytes: no gdb here, so unit tests run it in the venv.

Everything takes raw memory (``bytes``) or a reader (``read(paddr, n) -> bytes``) and returns text
lines; the command modules only fetch memory from gdb and print. Stdlib + hvtrace.abi/decode only
(gdb's embedded Python is Debian's system Python without the venv). What a record means and what
differs per back end come from hvtrace.decode.record_meaning and hvtrace.decode.vendor.
"""

from __future__ import annotations

import ctypes
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from hvtrace import abi
from hvtrace.abi import HvBreak, HvBreakConfig, HvDiscovery, HvRecord, HvRing
from hvtrace.decode import guest_paging, record_meaning
from hvtrace.decode.record_meaning import kind_name
from hvtrace.decode.vendor import Vendor, reason_name, vendor_of

Reader = Callable[[int, int], bytes]

GPR_NAMES = ("RAX", "RCX", "RDX", "RBX", "RSP", "RBP", "RSI", "RDI", *(f"R{i}" for i in range(8, 16)))
SNAP_HEADER_SIZE: int = abi.HvSnapshot.field.offset
FIELD_SIZE = ctypes.sizeof(abi.HvSnapshotField)
RING_HEADER_SIZE = ctypes.sizeof(HvRing)
WHY_NAMES = {int(w): w.name for w in abi.HvSnapWhy}
KIND_NAMES = [n.lower() for n in record_meaning.KIND_NAMES.values()]


class HvError(Exception):
    """A one-line user error; commands print it as ``<command>: <message>``."""


# ---- parsing ---------------------------------------------------------------------------------------


def parse_int(text: str, what: str) -> int:
    try:
        value = int(text.replace("_", ""), 0)
    except ValueError:
        raise HvError(f"bad {what} {text!r} (expected a number, e.g. 0x1000 or 42)") from None
    if value < 0:
        raise HvError(f"bad {what} {text!r} (must not be negative)")
    return value


def parse_range(text: str, what: str) -> tuple[int, int]:
    """``A-B`` (inclusive) or a single address ``A``."""
    lo, sep, hi = text.partition("-")
    a = parse_int(lo, what)
    b = parse_int(hi, what) if sep else a
    if b < a:
        raise HvError(f"bad {what} {text!r} (end below start)")
    return a, b


# ---- discovery -------------------------------------------------------------------------------------


def parse_discovery(data: bytes, addr: int) -> HvDiscovery:
    """The header at ``addr``, checked as every tool checks it (record_meaning.check_header)."""
    try:
        return record_meaning.check_header(data)
    except record_meaning.HeaderError as e:
        raise HvError(f"hv_trace at {addr:#x}: {e.message}") from None


def vendor_name(vendor: int) -> str:
    return vendor_of(vendor).name


def check_cpu(d: HvDiscovery, cpu: int) -> None:
    if d.cpu_count == 0:
        raise HvError("no CPU is online in this target (hypervisor not started yet?)")
    if not 0 <= cpu < d.cpu_count:
        raise HvError(f"no CPU {cpu} (this target has {d.cpu_count} CPUs: 0-{d.cpu_count - 1})")


# ---- snapshots -------------------------------------------------------------------------------------


@dataclass
class Snapshot:
    seq: int
    vendor: int
    cpu: int
    why: int
    flags: int
    exit_reason: int
    gpr: tuple[int, ...]
    fields: list[tuple[int, int]]

    @property
    def why_name(self) -> str:
        return WHY_NAMES.get(self.why, str(self.why))

    @property
    def backend(self) -> Vendor:
        return vendor_of(self.vendor)

    def value(self, name: str) -> int | None:
        """A field by its native name: VMCS (GUEST_RIP) or VMCB (RIP)."""
        return self.backend.snapshot_value(self.fields, name)

    def register(self, reg: str) -> int | None:
        """A guest register by a vendor-neutral name (vendor.GUEST_REGISTERS: RIP, CR3, EFER, ...)."""
        return self.backend.guest_register(self.fields, reg)


def read_snapshot(read: Reader, d: HvDiscovery, cpu: int) -> Snapshot:
    """The CPU's snapshot, seqlock-checked; HvError when absent, never taken or being written."""
    check_cpu(d, cpu)
    addr = d.snapshot[cpu]
    if not addr:
        raise HvError(f"CPU {cpu} has no snapshot area (hv_trace.snapshot[{cpu}] is 0)")
    pad = bytes(ctypes.sizeof(abi.HvSnapshot) - SNAP_HEADER_SIZE)
    head = abi.HvSnapshot.from_buffer_copy(read(addr, SNAP_HEADER_SIZE) + pad)
    if head.seq == 0:
        raise HvError(f"no snapshot on CPU {cpu} yet (the hypervisor has not taken one)")
    if head.seq & 1:
        raise HvError(f"the snapshot of CPU {cpu} is incomplete (seq {head.seq} is odd: being written)")
    count = min(head.count, abi.HV_SNAPSHOT_MAX_FIELDS)
    raw = read(addr + SNAP_HEADER_SIZE, count * FIELD_SIZE)
    seq_after = struct.unpack("<Q", read(addr, 8))[0]
    if seq_after != head.seq:
        raise HvError(f"the snapshot of CPU {cpu} changed while being read (seq {head.seq} -> {seq_after})")
    fields = [(e, v) for e, _r, v in struct.iter_unpack("<IIQ", raw)]
    h = head
    return Snapshot(h.seq, h.vendor, h.cpu, h.why, h.flags, h.exit_reason, tuple(h.gpr), fields)


def snapshot_title(s: Snapshot) -> str:
    name = s.backend.reason_name(s.exit_reason & 0xFFFF)
    trunc = " (TRUNCATED)" if s.flags & abi.HV_SNAP_TRUNCATED else ""
    return (
        f"CPU {s.cpu} {s.backend.snapshot_name} snapshot: why={s.why_name} seq={s.seq} "
        f"exit={name} ({s.exit_reason:#x}) "
        f"{len(s.fields)} fields{trunc}"
    )


GUEST_CONTROL = ("RIP", "RSP", "RFLAGS", "CR0", "CR3", "CR4", "EFER")


def guest_lines(s: Snapshot) -> list[str]:
    """Guest GPRs (snapshot gpr[]) and control registers (from the VMCS / VMCB fields)."""
    gprs = list(s.gpr)
    rax = s.register("RAX")
    if rax is not None:
        gprs[0] = rax  # SVM keeps guest RAX in the VMCB, not in the exit frame
    lines = []
    for row in range(0, 16, 4):
        lines.append("  ".join(f"{GPR_NAMES[i]:>3} {gprs[i]:#018x}" for i in range(row, row + 4)))
    lines.append(control_line(s))
    return lines


def control_line(s: Snapshot) -> str:
    """RIP, RSP, RFLAGS, CR0, CR3, CR4, EFER from the VMCS / VMCB fields ('?' where not taken)."""
    ctl = []
    for label in GUEST_CONTROL:
        v = s.register(label)
        ctl.append(f"{label} {'?' if v is None else f'{v:#x}'}")
    return "  ".join(ctl)


def code_address(s: Snapshot, rip: int, read: Reader) -> int | None:
    """Guest-physical address of CS:RIP through the guest's own paging at the snapshot (a loaded OS
    runs on its own page tables; for the self-test guest this is the identity). None if unmapped."""
    regs = [s.register(n) for n in ("CR0", "CR3", "CR4", "EFER", "CS_BASE")]
    if any(v is None for v in regs):
        return None
    cr0, cr3, cr4, efer, cs_base = (int(v or 0) for v in regs)
    try:
        return guest_paging.GuestPaging(cr0, cr3, cr4, efer).to_physical(read, cs_base + rip)
    except HvError:
        return None


# ---- records ---------------------------------------------------------------------------------------


def record_from(data: bytes) -> HvRecord:
    return HvRecord.from_buffer_copy(data[: ctypes.sizeof(HvRecord)])


def record_line(vendor: int, rec: HvRecord) -> str:
    flags = []
    if rec.flags & abi.HvRecFlag.BREAK_HIT:
        flags.append("BREAK")
    if rec.flags & abi.HvRecFlag.INJECTED:
        flags.append("INJECTED")
    if rec.flags & abi.HvRecFlag.DROPPED_BEFORE:
        flags.append("DROPS-BEFORE")
    parts = [
        f"CPU{rec.cpu} #{rec.seq}" if rec.seq else f"CPU{rec.cpu}",
        f"{reason_name(vendor, rec.reason)}({rec.reason:#x})/{kind_name(rec.kind)}",
        f"rip={rec.rip:#x}",
    ]
    extra = record_meaning.record_detail(vendor, rec)  # the gpa, for the kind that has one
    if extra:
        parts.append(extra)
    if flags:
        parts.append(" ".join(flags))
    return " ".join(parts)


@dataclass
class RingState:
    cpu: int
    addr: int
    head: int
    tail: int
    dropped: int
    capacity: int
    enabled: int

    @property
    def exits(self) -> int:
        """Exits ever traced on this CPU: published records plus dropped ones."""
        return self.head + self.dropped


def read_ring(read: Reader, d: HvDiscovery, cpu: int) -> RingState | None:
    addr = d.ring[cpu]
    if not addr:
        return None
    r = HvRing.from_buffer_copy(read(addr, RING_HEADER_SIZE))
    return RingState(cpu, addr, r.head, r.tail, r.dropped, r.capacity, r.enabled)


def latest_records(read: Reader, ring: RingState, n: int) -> list[HvRecord]:
    """Up to n newest records still in the ring (oldest first), checked by their seq."""
    problem = record_meaning.capacity_problem(ring.capacity)
    if problem:
        raise HvError(f"ring of CPU {ring.cpu} has a {problem}")
    first = max(ring.head - n, ring.head - ring.capacity, 0)  # records first + 1 .. head
    return record_meaning.read_records(
        read, ring.addr + RING_HEADER_SIZE, ring.capacity, first + 1, ring.head - first
    )


# ---- reasons and breaks ----------------------------------------------------------------------------


def reason_words(vendor: int) -> list[str]:
    """What hv-break / hv-exits --reason accept: kind names, then native names (lower case)."""
    natives = vendor_of(vendor).reason_words()
    return [*KIND_NAMES, *[n for n in natives if n not in KIND_NAMES]]


def parse_reason(vendor: int, text: str) -> tuple[int, int]:
    """REASON -> (kind, native reason), each HV_BRK_ANY when not constrained."""
    low = text.lower()
    if low == "any":
        return abi.HV_BRK_ANY, abi.HV_BRK_ANY
    if low in KIND_NAMES:
        return KIND_NAMES.index(low), abi.HV_BRK_ANY
    code = vendor_of(vendor).reason_code(text)
    if code is not None:
        return abi.HV_BRK_ANY, code & 0xFFFF
    try:
        return abi.HV_BRK_ANY, int(text, 0) & 0xFFFF
    except ValueError:
        pass
    sample = ", ".join(KIND_NAMES[1:6])
    raise HvError(f"unknown exit reason {text!r} (a kind such as {sample}, ... or a native reason name)")


def record_matches(vendor: int, rec: HvRecord, reason: str) -> bool:
    kind, native = parse_reason(vendor, reason)
    return kind in (abi.HV_BRK_ANY, rec.kind) and native in (abi.HV_BRK_ANY, rec.reason)


def break_config_from(data: bytes) -> HvBreakConfig:
    return HvBreakConfig.from_buffer_copy(data)


def describe_break(vendor: int, b: HvBreak) -> str:
    what = []
    what.append("any" if b.kind == abi.HV_BRK_ANY else kind_name(b.kind).lower())
    if b.reason != abi.HV_BRK_ANY:
        what.append(f"reason={reason_name(vendor, b.reason)}({b.reason:#x})")
    if b.cpu != abi.HV_BRK_ANY:
        what.append(f"cpu={b.cpu}")
    if b.flags & abi.HV_BRK_MATCH_ARG0:
        what.append(f"arg0={b.arg0:#x}")
    if b.flags & abi.HV_BRK_MATCH_GPA:
        what.append(f"gpa={b.gpa_lo:#x}-{b.gpa_hi:#x}")
    if b.ignore:
        what.append(f"ignore={b.ignore}")
    if b.flags & abi.HV_BRK_TRACE:
        what.insert(0, "trace")
    return " ".join(what)


def break_entry_offset(index: int) -> int:
    return HvBreakConfig.entry.offset + index * ctypes.sizeof(HvBreak)


def free_slot(cfg: HvBreakConfig) -> int:
    for i in range(abi.HV_BREAK_MAX):
        if not cfg.entry[i].enabled:
            return i
    raise HvError(f"break table full ({abi.HV_BREAK_MAX} entries): free one with hv-break delete N")


def enabled_count(entries: Iterable[HvBreak]) -> int:
    return sum(1 for e in entries if e.enabled)


def kinds_mask(entries: Iterable[HvBreak]) -> int:
    """hv_break_config.kinds: bit K when an enabled entry can match kind K; 0 (no filter) when one
    matches any kind (a native reason or 'any' names no kind)."""
    mask = 0
    for e in entries:
        if not e.enabled:
            continue
        if e.kind == abi.HV_BRK_ANY or e.kind >= 32:
            return 0
        mask |= 1 << e.kind
    return mask


#: hv_break_config.generation values the tools never publish: 0 is a tool that keeps no generation (the
#: hypervisor then decodes the table at every exit), 0xffffffff the hypervisor's "nothing compiled".
GENERATION_NONE = (0, 0xFFFFFFFF)


def next_generation(current: int) -> int:
    """The generation that follows ``current`` (0xfffffffe is followed by 1)."""
    following = (current + 1) & 0xFFFFFFFF
    return 1 if following in GENERATION_NONE else following


def publish_writes(cfg: HvBreakConfig, changed: Iterable[int]) -> list[tuple[int, bytes]]:
    """The writes that publish ``cfg`` (the tool's copy, read from the target, with the ``changed``
    entries rewritten) while the guest runs: (offset in hv_break_config, bytes), to be written in this
    order, each visible before the next (abi.h): armed = 0, the changed entries, kinds, generation + 1,
    armed = the enabled count. Updates ``cfg.generation`` and ``cfg.armed`` to what they publish."""
    armed_at, kinds_at = HvBreakConfig.armed.offset, HvBreakConfig.kinds.offset
    writes = [(armed_at, bytes(4))]
    writes += [(break_entry_offset(i), bytes(cfg.entry[i])) for i in sorted(set(changed))]
    cfg.kinds = kinds_mask(cfg.entry[: abi.HV_BREAK_MAX])
    cfg.generation = next_generation(cfg.generation)
    cfg.armed = enabled_count(cfg.entry[: abi.HV_BREAK_MAX])
    writes.append((kinds_at, cfg.kinds.to_bytes(4, "little")))
    writes.append((HvBreakConfig.generation.offset, cfg.generation.to_bytes(4, "little")))
    writes.append((armed_at, cfg.armed.to_bytes(4, "little")))
    return writes


# ---- stage 2 ---------------------------------------------------------------------------------------


def stage2_kind(vendor: int) -> str:
    kind = vendor_of(vendor).stage2_name
    if kind is None:
        raise HvError("no back end chosen yet (hv_trace.vendor is 0): no stage-2 tables")
    return kind


def table_from(data: bytes) -> tuple[int, ...]:
    return struct.unpack("<512Q", data)
