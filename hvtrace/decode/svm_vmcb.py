"""The AMD-V VMCB layout: control area and state-save area fields, and a VMCB image to read them from.

Sources: AMD64 Architecture Programmer's Manual Vol. 2 (pub. 24593, rev. 3.41-3.42), Appendix B
"Layout of VMCB": Table B-1 (control area, offsets 0x000-0x3FF), Table B-2 (state-save area, from
0x400; the table lists offsets relative to 0x400, here they are from the VMCB start).

The SVM side is split like the VMX one: svm_vmcb (layout, as vmcs_fields), svm_controls (control bits,
as vmx_controls), svm_exits (exit codes and EXITINFO, as vmx_exits), vmcb_view (as vmcs_view).

Snapshot input: (byte offset, qword) pairs as the hypervisor stores them (abi.h struct hv_snapshot,
offsets 8-byte aligned), or the raw 4 KiB VMCB.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

VMCB_SIZE: Final = 4096
SAVE_AREA: Final = 0x400

# ---- layout ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VmcbField:
    offset: int  # from the start of the VMCB
    size: int  # bytes
    name: str
    area: str  # "controls", "exit" or "guest" (the display areas of vmcs_view)


def _c(offset: int, size: int, name: str) -> VmcbField:
    return VmcbField(offset, size, name, "controls")


def _e(offset: int, size: int, name: str) -> VmcbField:
    return VmcbField(offset, size, name, "exit")


def _g(offset: int, size: int, name: str) -> VmcbField:
    return VmcbField(offset, size, name, "guest")


SEGMENTS: Final = ("ES", "CS", "SS", "DS", "FS", "GS", "GDTR", "LDTR", "IDTR", "TR")

_CONTROL: Final = (
    _c(0x000, 2, "INTERCEPT_CR_READ"),
    _c(0x002, 2, "INTERCEPT_CR_WRITE"),
    _c(0x004, 2, "INTERCEPT_DR_READ"),
    _c(0x006, 2, "INTERCEPT_DR_WRITE"),
    _c(0x008, 4, "INTERCEPT_EXCEPTIONS"),
    _c(0x00C, 4, "INTERCEPT_MISC1"),
    _c(0x010, 4, "INTERCEPT_MISC2"),
    _c(0x014, 4, "INTERCEPT_MISC3"),
    _c(0x03C, 2, "PAUSE_FILTER_THRESHOLD"),
    _c(0x03E, 2, "PAUSE_FILTER_COUNT"),
    _c(0x040, 8, "IOPM_BASE_PA"),
    _c(0x048, 8, "MSRPM_BASE_PA"),
    _c(0x050, 8, "TSC_OFFSET"),
    _c(0x058, 4, "GUEST_ASID"),
    _c(0x05C, 1, "TLB_CONTROL"),
    _c(0x060, 8, "VINTR"),
    _c(0x068, 8, "INTERRUPT_SHADOW"),
    _e(0x070, 8, "EXITCODE"),
    _e(0x078, 8, "EXITINFO1"),
    _e(0x080, 8, "EXITINFO2"),
    _e(0x088, 8, "EXITINTINFO"),
    _c(0x090, 8, "NP_CONTROL"),
    _c(0x098, 8, "AVIC_APIC_BAR"),
    _c(0x0A0, 8, "GHCB_PA"),
    _c(0x0A8, 8, "EVENTINJ"),
    _c(0x0B0, 8, "N_CR3"),
    _c(0x0B8, 8, "VIRT_EXT"),
    _c(0x0C0, 4, "VMCB_CLEAN"),
    _e(0x0C8, 8, "NRIP"),
    _e(0x0D0, 1, "INSN_LEN"),
    _e(0x0D1, 15, "INSN_BYTES"),
    _c(0x0E0, 8, "AVIC_BACKING_PAGE"),
    _c(0x0F0, 8, "AVIC_LOGICAL_TABLE"),
    _c(0x0F8, 8, "AVIC_PHYSICAL_TABLE"),
    _c(0x108, 8, "VMSA_PA"),
    _c(0x110, 8, "VMGEXIT_RAX"),
    _c(0x118, 1, "VMGEXIT_CPL"),
)


def _segment_fields() -> tuple[VmcbField, ...]:
    out = []
    for i, seg in enumerate(SEGMENTS):
        base = SAVE_AREA + 16 * i
        out += [
            _g(base, 2, f"{seg}_SELECTOR"),
            _g(base + 2, 2, f"{seg}_ATTRIB"),
            _g(base + 4, 4, f"{seg}_LIMIT"),
            _g(base + 8, 8, f"{seg}_BASE"),
        ]
    return tuple(out)


_SAVE: Final = (
    *_segment_fields(),
    _g(0x4CA, 1, "VMPL"),
    _g(0x4CB, 1, "CPL"),
    _g(0x4D0, 8, "EFER"),
    _g(0x548, 8, "CR4"),
    _g(0x550, 8, "CR3"),
    _g(0x558, 8, "CR0"),
    _g(0x560, 8, "DR7"),
    _g(0x568, 8, "DR6"),
    _g(0x570, 8, "RFLAGS"),
    _g(0x578, 8, "RIP"),
    _g(0x5D8, 8, "RSP"),
    _g(0x5E0, 8, "S_CET"),
    _g(0x5E8, 8, "SSP"),
    _g(0x5F0, 8, "ISST_ADDR"),
    _g(0x5F8, 8, "RAX"),
    _g(0x600, 8, "STAR"),
    _g(0x608, 8, "LSTAR"),
    _g(0x610, 8, "CSTAR"),
    _g(0x618, 8, "SFMASK"),
    _g(0x620, 8, "KERNEL_GS_BASE"),
    _g(0x628, 8, "SYSENTER_CS"),
    _g(0x630, 8, "SYSENTER_ESP"),
    _g(0x638, 8, "SYSENTER_EIP"),
    _g(0x640, 8, "CR2"),
    _g(0x668, 8, "G_PAT"),
    _g(0x670, 8, "DBGCTL"),
    _g(0x678, 8, "BR_FROM"),
    _g(0x680, 8, "BR_TO"),
    _g(0x688, 8, "LASTEXCPFROM"),
    _g(0x690, 8, "LASTEXCPTO"),
    _g(0x6E0, 8, "SPEC_CTRL"),
)

#: Every field, control area first, in offset order.
FIELDS: Final[tuple[VmcbField, ...]] = (*_CONTROL, *_SAVE)
BY_NAME: Final[Mapping[str, VmcbField]] = {f.name: f for f in FIELDS}


def offset_of(name: str) -> int:
    return BY_NAME[name].offset


class Vmcb:
    """A VMCB image: the raw page plus which qwords the source actually provided."""

    def __init__(self, data: bytes | bytearray, present: set[int] | None = None) -> None:
        if len(data) < VMCB_SIZE:
            data = bytes(data) + bytes(VMCB_SIZE - len(data))
        self.data = bytes(data[:VMCB_SIZE])
        self.present = set(range(0, VMCB_SIZE, 8)) if present is None else present

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[int, int]]) -> Vmcb:
        """From (byte offset, qword) pairs; offsets must be 8-byte aligned and inside the page."""
        buf = bytearray(VMCB_SIZE)
        present: set[int] = set()
        for off, value in pairs:
            if off % 8 or not 0 <= off < VMCB_SIZE:
                raise ValueError(f"VMCB snapshot offset {off:#x} is not an aligned qword in the page")
            buf[off : off + 8] = (value & (1 << 64) - 1).to_bytes(8, "little")
            present.add(off)
        return cls(buf, present)

    def covered(self, f: VmcbField) -> bool:
        first, last = f.offset // 8 * 8, (f.offset + f.size - 1) // 8 * 8
        return all(q in self.present for q in range(first, last + 8, 8))

    def read(self, offset: int, size: int = 8) -> int:
        return int.from_bytes(self.data[offset : offset + size], "little")

    def get(self, name: str) -> int:
        f = BY_NAME[name]
        return self.read(f.offset, f.size)

    def bytes_of(self, name: str) -> bytes:
        f = BY_NAME[name]
        return self.data[f.offset : f.offset + f.size]
