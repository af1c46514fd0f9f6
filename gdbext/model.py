"""What the hv-* commands show, computed from bytes: no gdb here, so unit tests run it in the venv.

Everything takes raw memory (``bytes``) or a reader (``read(paddr, n) -> bytes``) and returns text
lines; the command modules only fetch memory from gdb and print. Stdlib + hvtrace.abi/decode/arch only
(gdb's embedded Python is Debian's system Python without the venv).
"""

from __future__ import annotations

import ctypes
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from hvtrace import abi
from hvtrace.abi import HvBreak, HvBreakConfig, HvDiscovery, HvExitKind, HvRecord, HvRing, HvVendor
from hvtrace.arch import reason_code, reason_name, reason_names
from hvtrace.decode import guest_paging, svm_vmcb, vmcs_fields, vmx_exits

Reader = Callable[[int, int], bytes]

GPR_NAMES = ("RAX", "RCX", "RDX", "RBX", "RSP", "RBP", "RSI", "RDI", *(f"R{i}" for i in range(8, 16)))
SNAP_HEADER_SIZE: int = abi.HvSnapshot.field.offset
FIELD_SIZE = ctypes.sizeof(abi.HvSnapshotField)
RING_HEADER_SIZE = ctypes.sizeof(HvRing)
WHY_NAMES = {int(w): w.name for w in abi.HvSnapWhy}
KIND_NAMES = [k.name.lower() for k in HvExitKind]


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
    if len(data) < ctypes.sizeof(HvDiscovery):
        raise HvError(f"hv_trace at {addr:#x}: short read")
    d = HvDiscovery.from_buffer_copy(data)
    if d.magic != abi.HV_DISCOVERY_MAGIC:
        raise HvError(f"hv_trace at {addr:#x} has no discovery magic (read {d.magic:#x}): not hvtrace memory")
    if d.abi_version != abi.HV_ABI_VERSION:
        raise HvError(f"hypervisor ABI {d.abi_version}, these tools speak ABI {abi.HV_ABI_VERSION}")
    return d


def vendor_name(vendor: int) -> str:
    return {1: "VMX", 2: "SVM", 0: "none"}.get(vendor, f"vendor {vendor}")


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

    def value(self, name: str) -> int | None:
        """A guest register by VMCS name (GUEST_RIP) or VMCB name (RIP): the same call for both."""
        if self.vendor == HvVendor.VMX:
            enc = vmcs_fields.encoding_of(name)
            return next((v for e, v in self.fields if e == enc), None)
        off = svm_vmcb.offset_of(name)
        vmcb = svm_vmcb.Vmcb.from_pairs(self.fields)
        return vmcb.get(name) if off // 8 * 8 in vmcb.present else None


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
    return Snapshot(
        seq=head.seq,
        vendor=head.vendor,
        cpu=head.cpu,
        why=head.why,
        flags=head.flags,
        exit_reason=head.exit_reason,
        gpr=tuple(head.gpr),
        fields=fields,
    )


def snapshot_title(s: Snapshot) -> str:
    name = reason_name(s.vendor, s.exit_reason & 0xFFFF)
    trunc = " (TRUNCATED)" if s.flags & abi.HV_SNAP_TRUNCATED else ""
    kind = "VMCS" if s.vendor == HvVendor.VMX else "VMCB"
    return (
        f"CPU {s.cpu} {kind} snapshot: why={s.why_name} seq={s.seq} exit={name} ({s.exit_reason:#x}) "
        f"{len(s.fields)} fields{trunc}"
    )


GUEST_CONTROL = (
    ("RIP", "GUEST_RIP", "RIP"),
    ("RSP", "GUEST_RSP", "RSP"),
    ("RFLAGS", "GUEST_RFLAGS", "RFLAGS"),
    ("CR0", "GUEST_CR0", "CR0"),
    ("CR3", "GUEST_CR3", "CR3"),
    ("CR4", "GUEST_CR4", "CR4"),
    ("EFER", "GUEST_IA32_EFER", "EFER"),
)


def guest_lines(s: Snapshot) -> list[str]:
    """Guest GPRs (snapshot gpr[]) and control registers (from the VMCS / VMCB fields)."""
    gprs = list(s.gpr)
    rax = s.value("RAX") if s.vendor == HvVendor.SVM else None
    if rax is not None:
        gprs[0] = rax  # SVM keeps guest RAX in the VMCB, not in the exit frame
    lines = []
    for row in range(0, 16, 4):
        lines.append("  ".join(f"{GPR_NAMES[i]:>3} {gprs[i]:#018x}" for i in range(row, row + 4)))
    ctl = []
    for label, vmx_name, svm_name in GUEST_CONTROL:
        v = s.value(vmx_name if s.vendor == HvVendor.VMX else svm_name)
        ctl.append(f"{label} {'?' if v is None else f'{v:#x}'}")
    lines.append("  ".join(ctl))
    return lines


def code_address(s: Snapshot, rip: int, read: Reader) -> int | None:
    """Guest-physical address of CS:RIP through the guest's own paging at the snapshot (a loaded OS
    runs on its own page tables; for the self-test guest this is the identity). None if unmapped."""
    vmx = s.vendor == HvVendor.VMX
    regs = [
        s.value(n)
        for n in (
            ("GUEST_CR0", "GUEST_CR3", "GUEST_CR4", "GUEST_IA32_EFER", "GUEST_CS_BASE")
            if vmx
            else ("CR0", "CR3", "CR4", "EFER", "CS_BASE")
        )
    ]
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


def kind_name(kind: int) -> str:
    try:
        return HvExitKind(kind).name
    except ValueError:
        return f"KIND_{kind}"


def qualification(vendor: int, rec: HvRecord) -> str | None:
    if vendor == HvVendor.VMX:
        return vmx_exits.describe_qualification(rec.reason, rec.qual)
    if vendor == HvVendor.SVM:
        code = svm_vmcb.exit_code_from_record(rec.reason)
        return "; ".join(svm_vmcb.describe_exitinfo(code, rec.qual, rec.gpa)) or None
    return None


def args_text(rec: HvRecord) -> str:
    k, a0, a1 = rec.kind, rec.arg0, rec.arg1
    if k == HvExitKind.CPUID:
        return f"leaf {a0:#x} subleaf {a1:#x}"
    if k == HvExitKind.MSR_READ:
        return f"msr {a0:#x}"
    if k == HvExitKind.MSR_WRITE:
        return f"msr {a0:#x} value {a1:#x}"
    if k == HvExitKind.CR_ACCESS:
        return f"cr{a0} value {a1:#x}"
    if k == HvExitKind.VMCALL:
        return f"hypercall {a0} arg {a1:#x}"
    if k == HvExitKind.EXCEPTION:
        return f"vector {a0} error {a1:#x}"
    if k == HvExitKind.IO:
        return f"port {a0:#x}"
    return f"arg0 {a0:#x} arg1 {a1:#x}" if a0 or a1 else ""


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
    if rec.gpa:
        parts.append(f"gpa={rec.gpa:#x}")
    extra = args_text(rec)
    if extra:
        parts.append(extra)
    q = qualification(vendor, rec)
    if q:
        parts.append(f"[{q}]")
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
    if ring.capacity == 0 or ring.capacity & (ring.capacity - 1):
        raise HvError(f"ring of CPU {ring.cpu} has a bad capacity {ring.capacity}")
    first = max(ring.head - n, ring.head - ring.capacity, 0)
    out: list[HvRecord] = []
    size = abi.HV_RECORD_SIZE
    base = ring.addr + RING_HEADER_SIZE
    # Read the slots in at most two contiguous chunks (the ring wraps once).
    seqs = list(range(first, ring.head))
    chunk: dict[int, bytes] = {}
    while seqs:
        start_slot = seqs[0] & (ring.capacity - 1)
        run = min(len(seqs), ring.capacity - start_slot)
        data = read(base + start_slot * size, run * size)
        for i in range(run):
            chunk[seqs[i]] = data[i * size : (i + 1) * size]
        seqs = seqs[run:]
    for s in range(first, ring.head):
        rec = record_from(chunk[s])
        if rec.seq == s + 1:
            out.append(rec)
    return out


# ---- reasons and breaks ----------------------------------------------------------------------------


def reason_words(vendor: int) -> list[str]:
    """What hv-break / hv-exits --reason accept: kind names, then native names (lower case)."""
    natives = sorted({n.lower() for n in reason_names(vendor).values() if n != "UNKNOWN"})
    if vendor == 0:
        natives = sorted({n.lower() for v in (1, 2) for n in reason_names(v).values() if n != "UNKNOWN"})
    return [*KIND_NAMES, *[n for n in natives if n not in KIND_NAMES]]


def parse_reason(vendor: int, text: str) -> tuple[int, int]:
    """REASON -> (kind, native reason), each HV_BRK_ANY when not constrained."""
    low = text.lower()
    if low == "any":
        return abi.HV_BRK_ANY, abi.HV_BRK_ANY
    if low in KIND_NAMES:
        return KIND_NAMES.index(low), abi.HV_BRK_ANY
    code = reason_code(vendor, text)
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


# ---- stage 2 ---------------------------------------------------------------------------------------


def stage2_kind(vendor: int) -> str:
    if vendor == HvVendor.VMX:
        return "ept"
    if vendor == HvVendor.SVM:
        return "npt"
    raise HvError("no back end chosen yet (hv_trace.vendor is 0): no stage-2 tables")


def table_from(data: bytes) -> tuple[int, ...]:
    return struct.unpack("<512Q", data)
