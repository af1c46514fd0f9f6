"""Python mirror of hv/include/hv/abi.h, the only contract between the hypervisor and the host tools.

tests/unit/test_abi_mirror.py preprocesses abi.h with the host compiler and checks that every
``#define HV_*`` there exists here with the same value, and vice versa. Change both together.
"""

from __future__ import annotations

import ctypes
from enum import IntEnum
from typing import Final

HV_ABI_VERSION: Final = 2  # 2: records grew tsc_resume and cr3 (80 bytes); v1 files still read

#: Most logical processors the hypervisor brings up.
HV_MAX_CPUS: Final = 64

#: Every run ends with exactly one line ``HVTRACE STATUS code=<n> result=<pass|fail> reason=<token>``,
#: followed by `` guest_code=<n>`` when a loaded guest ended the run through isa-debug-exit.
HV_STATUS_PREFIX: Final = "HVTRACE STATUS"

#: QEMU isa-debug-exit port; QEMU's own exit status is then ``(code << 1) | 1``.
HV_DEBUG_EXIT_PORT: Final = 0xF4
#: Ports of the isa-debug-exit device from HV_DEBUG_EXIT_PORT (QEMU's ``iosize``).
HV_DEBUG_EXIT_SIZE: Final = 4


class HvStatus(IntEnum):
    """Hypervisor status codes (``HV_STATUS_<NAME>`` in abi.h); 0 is success, failures are below 64."""

    PASS = 0
    FAIL = 1  # generic failure (a check failed)
    EXCEPTION = 2  # a CPU took an exception in the hypervisor
    AP_TIMEOUT = 3  # an application processor did not come online in time
    POOL_EXHAUSTED = 4  # the physical page pool ran out
    BAD_BOOTINFO = 5  # multiboot information missing or unusable
    NO_ACPI = 6  # no RSDP / RSDT / MADT found
    TOO_MANY_CPUS = 7  # the MADT lists more than HV_MAX_CPUS processors
    BAD_CMDLINE = 8  # unknown or malformed option on the kernel command line
    GUEST_LOAD = 9  # the guest kernel module cannot be loaded (format, placement)
    MAX = 63


class HvExitKind(IntEnum):
    """Vendor-neutral VM-exit kinds (``HV_EXIT_<NAME>``), recorded next to the native reason."""

    OTHER = 0
    CPUID = 1
    MSR_READ = 2
    MSR_WRITE = 3
    CR_ACCESS = 4
    VMCALL = 5  # VMCALL / VMMCALL
    INVD = 6  # INVD / WBINVD
    EXCEPTION = 7
    STAGE2_FAULT = 8  # EPT violation / #NPF
    IO = 9
    HLT = 10
    XSETBV = 11
    INIT = 12
    SIPI = 13
    TRIPLE_FAULT = 14
    ENTRY_FAILURE = 15
    VIRT_INSN = 16  # the guest tried a VMX / SVM instruction


HV_EXIT_KIND_COUNT: Final = 17


class HvHypercall(IntEnum):
    """Hypercall functions (``HV_HC_<NAME>``): RAX = function, RBX = argument, result in RAX."""

    PING = 0  # returns HV_HC_PING_REPLY
    EXIT_COUNT = 1  # RBX = exit kind: exits of that kind on this CPU so far
    SNAPSHOT = 2  # snapshot this CPU's VMCS / VMCB now; returns the field count
    GUEST_EXIT = 3  # RBX = status code: a loaded guest is done; the run ends with that status


HV_HC_PING_REPLY: Final = 0x48565452  # "HVTR"
HV_HC_UNKNOWN: Final = 0xFFFF_FFFF_FFFF_FFFF  # (~0ull): unknown function

#: CPUID 0x40000000 returns the highest hypervisor leaf in EAX and this signature in EBX:ECX:EDX.
HV_CPUID_SIGNATURE: Final = "hvtrace\0\0\0\0\0"
HV_CPUID_MAX_LEAF: Final = 0x40000001  # 0x40000001: EAX = HV_ABI_VERSION
#: The CPUID storm (storm=1) executes CPUID with R15 = HV_STORM_MARK and R12 = its round.
HV_STORM_MARK: Final = 0x53544F524D523135


class HvVendor(IntEnum):
    """Back end in use (``HV_VENDOR_<NAME>``)."""

    NONE = 0
    VMX = 1
    SVM = 2


class HvSnapWhy(IntEnum):
    """Why a snapshot was taken (``HV_SNAP_<NAME>``)."""

    REQUEST = 1
    BREAK = 2
    FATAL = 3


HV_SNAPSHOT_MAX_FIELDS: Final = 512
HV_SNAP_TRUNCATED: Final = 1  # snapshot flags: more fields than HV_SNAPSHOT_MAX_FIELDS
HV_DISCOVERY_MAGIC: Final = 0x4543415254564821  # "!HVTRACE" in memory (little endian)


class HvSnapshotField(ctypes.LittleEndianStructure):
    """``struct hv_snapshot_field``: a VMCS encoding (VMX) or VMCB byte offset (SVM) and its value."""

    _fields_ = (("encoding", ctypes.c_uint32), ("reserved", ctypes.c_uint32), ("value", ctypes.c_uint64))


class HvSnapshot(ctypes.LittleEndianStructure):
    """``struct hv_snapshot``: one CPU's VMCS / VMCB; ``seq`` is odd while the hypervisor writes it."""

    _fields_ = (
        ("seq", ctypes.c_uint64),
        ("vendor", ctypes.c_uint32),
        ("cpu", ctypes.c_uint32),
        ("why", ctypes.c_uint32),
        ("count", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("exit_reason", ctypes.c_uint32),
        ("tsc", ctypes.c_uint64),
        ("gpr", ctypes.c_uint64 * 16),
        ("field", HvSnapshotField * HV_SNAPSHOT_MAX_FIELDS),
    )


HV_RECORD_SIZE: Final = 80
HV_RECORD_SIZE_V1: Final = 64  # ABI v1 records: the first 64 bytes of today's
HV_FRAME_MAGIC: Final = 0x52564821  # "!HVR": a record frame on port 0xE9 (trace_e9=1)
HV_FRAME_SIZE: Final = 88  # magic, 80-byte record, CRC-32 of the record
HV_RING_DEFAULT_CAPACITY: Final = 4096  # the floor of the ring=auto size rule
HV_RING_MAX_CAPACITY: Final = 1 << 20
HV_RING_RAM_SHARE: Final = 32  # ring=auto: all rings together take 1/32 of usable RAM


class HvRecFlag(IntEnum):
    """Record flags (``HV_REC_<NAME>``)."""

    BREAK_HIT = 0x01  # an exit breakpoint matched this exit
    INJECTED = 0x02  # the handler injected an event into the guest
    DROPPED_BEFORE = 0x04  # records were dropped between the previous one and this
    SECURITY = 0x08  # the guest touched hypervisor memory (blocked, #GP) or a hidden hypervisor device


class HvRingPolicy(IntEnum):
    """What a full ring does while nobody reads it (``HV_RING_<NAME>``)."""

    DROP_NEWEST = 0
    OVERWRITE = 1


class HvReader(IntEnum):
    """Who reads a ring (``HV_READER_<NAME>``, the ring header's ``reader``, written by the host)."""

    NONE = 0  # no reader has attached yet
    ATTACHED = 1  # a lossless reader consumes and writes ``tail``
    LEFT = 2  # the reader detached: nobody reads any more


class HvRecord(ctypes.LittleEndianStructure):
    """``struct hv_record``: one VM exit (80 bytes; ``seq`` written last, 0 while being rewritten).

    Handling time is ``tsc_resume - tsc`` (0 = the guest was not resumed after this exit)."""

    _fields_ = (
        ("seq", ctypes.c_uint64),
        ("tsc", ctypes.c_uint64),
        ("cpu", ctypes.c_uint16),
        ("kind", ctypes.c_uint8),
        ("flags", ctypes.c_uint8),
        ("reason", ctypes.c_uint16),
        ("insn_len", ctypes.c_uint8),
        ("reserved", ctypes.c_uint8),
        ("qual", ctypes.c_uint64),
        ("rip", ctypes.c_uint64),
        ("gpa", ctypes.c_uint64),
        ("arg0", ctypes.c_uint64),
        ("arg1", ctypes.c_uint64),
        ("tsc_resume", ctypes.c_uint64),
        ("cr3", ctypes.c_uint64),
    )


class HvRing(ctypes.LittleEndianStructure):
    """``struct hv_ring``: the header of one CPU's ring; ``capacity`` records follow it."""

    _fields_ = (
        ("head", ctypes.c_uint64),
        ("room", ctypes.c_uint32),  # producer-private: records before its next look at tail and reader
        ("overwrites", ctypes.c_uint32),  # producer-private: full and no reader attached overwrites
        ("drop_flag", ctypes.c_uint32),  # producer-private: the next record carries DROPPED_BEFORE
        ("slot_mask", ctypes.c_uint32),  # producer-private: capacity - 1
        ("pad0", ctypes.c_uint8 * 40),
        ("tail", ctypes.c_uint64),
        ("reader", ctypes.c_uint32),  # HvReader, written by the host
        ("reserved", ctypes.c_uint32),
        ("pad1", ctypes.c_uint8 * 48),
        ("dropped", ctypes.c_uint64),
        ("capacity", ctypes.c_uint32),
        ("policy", ctypes.c_uint32),
        ("enabled", ctypes.c_uint32),
        ("cpu", ctypes.c_uint32),
        ("dropped_flagged", ctypes.c_uint64),
        ("dropped_unread", ctypes.c_uint64),  # of ``dropped``: while no reader was attached
        ("wait_ticks", ctypes.c_uint64),  # longest wait for the reader (TSC ticks, 0 = never)
        ("waited_ticks", ctypes.c_uint64),  # TSC ticks spent waiting for the reader so far
        ("wait_expired", ctypes.c_uint32),  # 1: a wait ran out, the ring no longer waits
        ("reserved2", ctypes.c_uint32),
    )


HV_BREAK_MAX: Final = 8
HV_BRK_ANY: Final = 0xFFFF_FFFF  # kind / reason / cpu: match any
HV_BRK_MATCH_ARG0: Final = 0x1  # arg0 must equal 'arg0' (MSR index, CR number, port, CPUID leaf)
HV_BRK_MATCH_GPA: Final = 0x2  # gpa must lie in [gpa_lo, gpa_hi]
HV_BRK_TRACE: Final = 0x4  # a tracepoint: count matching exits, never stop
HV_BREAK_TERMS: Final = 4  # condition terms per entry, ANDed
HV_BRK_OPD_GPRS: Final = 16  # condition operands below this are guest GPRs (x86 order; 4 = RSP unused)


class HvBrkOperand(IntEnum):
    """A condition term's operand beyond the GPRs: a field of the exit's record (abi.h HV_BRK_OPD_*)."""

    ARG0 = 16
    ARG1 = 17
    QUAL = 18
    GPA = 19
    RIP = 20
    CR3 = 21
    COUNT = 22


class HvBrkOp(IntEnum):
    """A condition term's comparison (abi.h HV_BRK_OP_*), unsigned; TEST is (operand & value) != 0."""

    EQ = 0
    NE = 1
    LT = 2
    LE = 3
    GT = 4
    GE = 5
    TEST = 6


class HvBreakTerm(ctypes.LittleEndianStructure):
    """``struct hv_break_term``: one ``operand op value`` of an exit break's condition."""

    _fields_ = (
        ("operand", ctypes.c_uint8),
        ("op", ctypes.c_uint8),
        ("reserved", ctypes.c_uint8 * 6),
        ("value", ctypes.c_uint64),
    )


class HvBreak(ctypes.LittleEndianStructure):
    """``struct hv_break``: one exit breakpoint, matched inside the hypervisor."""

    _fields_ = (
        ("enabled", ctypes.c_uint32),
        ("kind", ctypes.c_uint32),
        ("reason", ctypes.c_uint32),
        ("cpu", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("nterms", ctypes.c_uint32),
        ("arg0", ctypes.c_uint64),
        ("gpa_lo", ctypes.c_uint64),
        ("gpa_hi", ctypes.c_uint64),
        ("hits", ctypes.c_uint64),
        ("ignore", ctypes.c_uint64),
        ("term", HvBreakTerm * HV_BREAK_TERMS),
    )


class HvBreakConfig(ctypes.LittleEndianStructure):
    """``struct hv_break_config`` at ``hv_trace.break_config``; ``armed`` = number of enabled entries."""

    _fields_ = (
        ("armed", ctypes.c_uint32),
        ("last_hit", ctypes.c_uint32),
        ("last_cpu", ctypes.c_uint32),
        ("kinds", ctypes.c_uint32),  # bit K: an enabled entry can match kind K; 0 = any kind may match
        ("entry", HvBreak * HV_BREAK_MAX),
        ("generation", ctypes.c_uint32),  # bumped at each change of the table (abi.h: the protocol)
        ("reserved", ctypes.c_uint32),
    )


#: Most entries of the discovery header's immutable-range table (abi.h).
HV_IMMUTABLE_MAX: Final = 200


class HvRange(ctypes.LittleEndianStructure):
    """``struct hv_range``: one physical range of memory no one writes after launch."""

    _fields_ = (
        ("base", ctypes.c_uint64),
        ("length", ctypes.c_uint64),
    )


class HvDiscovery(ctypes.LittleEndianStructure):
    """``struct hv_discovery`` at the ELF symbol ``hv_trace``: where the tools find everything."""

    _fields_ = (
        ("magic", ctypes.c_uint64),
        ("abi_version", ctypes.c_uint32),
        ("header_size", ctypes.c_uint32),
        ("vendor", ctypes.c_uint32),
        ("cpu_count", ctypes.c_uint32),
        ("snapshot_size", ctypes.c_uint32),
        ("record_size", ctypes.c_uint32),
        ("ring_capacity", ctypes.c_uint32),
        ("reserved", ctypes.c_uint32),
        ("snapshot", ctypes.c_uint64 * HV_MAX_CPUS),
        ("ring", ctypes.c_uint64 * HV_MAX_CPUS),
        ("break_config", ctypes.c_uint64),
        ("stage2_root", ctypes.c_uint64),
        ("launched", ctypes.c_uint64),
        ("build_id", ctypes.c_uint8 * 20),
        ("reserved2", ctypes.c_uint8 * 4),
        ("immutable", ctypes.c_uint64),  # struct hv_range[immutable_count], physical
        ("immutable_count", ctypes.c_uint32),
        ("reserved3", ctypes.c_uint32),
    )


#: Every struct abi.h defines, by its C name; tests compile abi.h and compare offsets and sizes.
ABI_STRUCTS: Final[dict[str, type[ctypes.LittleEndianStructure]]] = {
    "hv_snapshot_field": HvSnapshotField,
    "hv_snapshot": HvSnapshot,
    "hv_record": HvRecord,
    "hv_ring": HvRing,
    "hv_break_term": HvBreakTerm,
    "hv_break": HvBreak,
    "hv_break_config": HvBreakConfig,
    "hv_range": HvRange,
    "hv_discovery": HvDiscovery,
}


def status_name(code: int) -> str:
    """Name of a status code, or ``"UNKNOWN(<code>)"`` for codes abi.h does not define."""
    try:
        return HvStatus(code).name
    except ValueError:
        return f"UNKNOWN({code})"


def mirror_defines() -> dict[str, int | str]:
    """Every ``HV_*`` define of abi.h as this module mirrors it (name -> value)."""
    out: dict[str, int | str] = {
        "HV_ABI_VERSION": HV_ABI_VERSION,
        "HV_MAX_CPUS": HV_MAX_CPUS,
        "HV_STATUS_PREFIX": HV_STATUS_PREFIX,
        "HV_DEBUG_EXIT_PORT": HV_DEBUG_EXIT_PORT,
        "HV_DEBUG_EXIT_SIZE": HV_DEBUG_EXIT_SIZE,
    }
    for member in HvStatus:
        out[f"HV_STATUS_{member.name}"] = int(member)
    for kind in HvExitKind:
        out[f"HV_EXIT_{kind.name}"] = int(kind)
    out["HV_EXIT_KIND_COUNT"] = HV_EXIT_KIND_COUNT
    for hc in HvHypercall:
        out[f"HV_HC_{hc.name}"] = int(hc)
    out["HV_HC_PING_REPLY"] = HV_HC_PING_REPLY
    out["HV_HC_UNKNOWN"] = HV_HC_UNKNOWN
    for vendor in HvVendor:
        out[f"HV_VENDOR_{vendor.name}"] = int(vendor)
    for why in HvSnapWhy:
        out[f"HV_SNAP_{why.name}"] = int(why)
    out["HV_SNAPSHOT_MAX_FIELDS"] = HV_SNAPSHOT_MAX_FIELDS
    out["HV_SNAP_TRUNCATED"] = HV_SNAP_TRUNCATED
    out["HV_DISCOVERY_MAGIC"] = HV_DISCOVERY_MAGIC
    out["HV_RECORD_SIZE"] = HV_RECORD_SIZE
    out["HV_BREAK_MAX"] = HV_BREAK_MAX
    out["HV_IMMUTABLE_MAX"] = HV_IMMUTABLE_MAX
    out["HV_BRK_ANY"] = HV_BRK_ANY
    out["HV_BRK_MATCH_ARG0"] = HV_BRK_MATCH_ARG0
    out["HV_BRK_MATCH_GPA"] = HV_BRK_MATCH_GPA
    out["HV_BRK_TRACE"] = HV_BRK_TRACE
    out["HV_BREAK_TERMS"] = HV_BREAK_TERMS
    out["HV_BRK_OPD_GPRS"] = HV_BRK_OPD_GPRS
    out.update({f"HV_BRK_OPD_{o.name}": int(o) for o in HvBrkOperand})
    out.update({f"HV_BRK_OP_{o.name}": int(o) for o in HvBrkOp})
    out["HV_FRAME_MAGIC"] = HV_FRAME_MAGIC
    out["HV_FRAME_SIZE"] = HV_FRAME_SIZE
    out["HV_RING_DEFAULT_CAPACITY"] = HV_RING_DEFAULT_CAPACITY
    out["HV_RING_MAX_CAPACITY"] = HV_RING_MAX_CAPACITY
    out["HV_RING_RAM_SHARE"] = HV_RING_RAM_SHARE
    for reader in HvReader:
        out[f"HV_READER_{reader.name}"] = int(reader)
    for flag in HvRecFlag:
        out[f"HV_REC_{flag.name}"] = int(flag)
    for policy in HvRingPolicy:
        out[f"HV_RING_{policy.name}"] = int(policy)
    out["HV_CPUID_SIGNATURE"] = HV_CPUID_SIGNATURE
    out["HV_CPUID_MAX_LEAF"] = HV_CPUID_MAX_LEAF
    out["HV_STORM_MARK"] = HV_STORM_MARK
    return out
