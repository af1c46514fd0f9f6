"""VMCS field encodings: Intel SDM Vol. 3D Appendix B "Field Encoding in VMCS" (sections B.1-B.4).

Every field is listed once, in the SDM's order within its width and type; the width and group follow
from the encoding itself (SDM Vol. 3C 25.11.2, "Structure of VMCS Component Encoding"):

    bit 0      access type: 0 = full, 1 = high (the upper 32 bits of a 64-bit field)
    bits 9:1   index
    bits 11:10 type: 0 control, 1 VM-exit information (read-only data), 2 guest state, 3 host state
    bit 12     reserved (0)
    bits 14:13 width: 0 16-bit, 1 64-bit, 2 32-bit, 3 natural-width

Names follow Linux's arch/x86/include/asm/vmx.h where it has one (so KVM users recognise them) and the
SDM's wording otherwise. Edition used: SDM Vol. 3D, order number 326019 of 2024 (with FRED, secondary
VM-exit controls, IA32_SPEC_CTRL virtualization).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Final


class Width(IntEnum):
    """Bits 14:13 of an encoding."""

    W16 = 0
    W64 = 1
    W32 = 2
    NATURAL = 3


class Group(IntEnum):
    """Bits 11:10 of an encoding (the SDM's "type")."""

    CONTROL = 0
    EXIT_INFO = 1  # "VM-exit information" / read-only data
    GUEST = 2
    HOST = 3


WIDTH_LABEL: Final[dict[Width, str]] = {
    Width.W16: "16",
    Width.W64: "64",
    Width.W32: "32",
    Width.NATURAL: "nat",
}
GROUP_LABEL: Final[dict[Group, str]] = {
    Group.CONTROL: "control",
    Group.EXIT_INFO: "exit-info",
    Group.GUEST: "guest",
    Group.HOST: "host",
}


@dataclass(frozen=True)
class EncodingBits:
    """An encoding split into its bit fields (SDM Vol. 3C 25.11.2)."""

    high: bool  # access type bit 0: the high 32 bits of a 64-bit field
    index: int
    group: Group
    width: Width
    reserved_set: bool  # bit 12 or bits 31:15 set: not a valid encoding

    @property
    def full_encoding(self) -> int:
        """The encoding of the full-access form (bit 0 clear)."""
        return (self.width << 13) | (self.group << 10) | (self.index << 1)


def split_encoding(encoding: int) -> EncodingBits:
    """Decode an encoding's access type, index, type and width."""
    return EncodingBits(
        high=bool(encoding & 1),
        index=(encoding >> 1) & 0x1FF,
        group=Group((encoding >> 10) & 3),
        width=Width((encoding >> 13) & 3),
        reserved_set=bool(encoding & 0x1000) or encoding >> 15 != 0,
    )


def make_encoding(width: Width, group: Group, index: int, *, high: bool = False) -> int:
    """The encoding for (width, type, index, access type)."""
    return (int(width) << 13) | (int(group) << 10) | ((index & 0x1FF) << 1) | int(high)


@dataclass(frozen=True)
class VmcsField:
    """One VMCS field."""

    encoding: int
    name: str

    @property
    def width(self) -> Width:
        return Width((self.encoding >> 13) & 3)

    @property
    def group(self) -> Group:
        return Group((self.encoding >> 10) & 3)

    @property
    def bits(self) -> int:
        """Value width in bits; natural width is 64 on a 64-bit processor."""
        return {Width.W16: 16, Width.W32: 32, Width.W64: 64, Width.NATURAL: 64}[self.width]

    def mask(self, value: int) -> int:
        return value & ((1 << self.bits) - 1)


# (encoding, name) in SDM Appendix B order.
_TABLE: Final[tuple[tuple[int, str], ...]] = (
    # B.1.1 16-bit control fields
    (0x0000, "VIRTUAL_PROCESSOR_ID"),
    (0x0002, "POSTED_INTR_NV"),
    (0x0004, "EPTP_INDEX"),
    (0x0006, "HLAT_PREFIX_SIZE"),
    (0x0008, "LAST_PID_POINTER_INDEX"),
    # B.1.2 16-bit guest-state fields
    (0x0800, "GUEST_ES_SELECTOR"),
    (0x0802, "GUEST_CS_SELECTOR"),
    (0x0804, "GUEST_SS_SELECTOR"),
    (0x0806, "GUEST_DS_SELECTOR"),
    (0x0808, "GUEST_FS_SELECTOR"),
    (0x080A, "GUEST_GS_SELECTOR"),
    (0x080C, "GUEST_LDTR_SELECTOR"),
    (0x080E, "GUEST_TR_SELECTOR"),
    (0x0810, "GUEST_INTR_STATUS"),
    (0x0812, "GUEST_PML_INDEX"),
    (0x0814, "GUEST_UINV"),
    # B.1.3 16-bit host-state fields
    (0x0C00, "HOST_ES_SELECTOR"),
    (0x0C02, "HOST_CS_SELECTOR"),
    (0x0C04, "HOST_SS_SELECTOR"),
    (0x0C06, "HOST_DS_SELECTOR"),
    (0x0C08, "HOST_FS_SELECTOR"),
    (0x0C0A, "HOST_GS_SELECTOR"),
    (0x0C0C, "HOST_TR_SELECTOR"),
    # B.2.1 64-bit control fields
    (0x2000, "IO_BITMAP_A"),
    (0x2002, "IO_BITMAP_B"),
    (0x2004, "MSR_BITMAP"),
    (0x2006, "VM_EXIT_MSR_STORE_ADDR"),
    (0x2008, "VM_EXIT_MSR_LOAD_ADDR"),
    (0x200A, "VM_ENTRY_MSR_LOAD_ADDR"),
    (0x200C, "EXECUTIVE_VMCS_POINTER"),
    (0x200E, "PML_ADDRESS"),
    (0x2010, "TSC_OFFSET"),
    (0x2012, "VIRTUAL_APIC_PAGE_ADDR"),
    (0x2014, "APIC_ACCESS_ADDR"),
    (0x2016, "POSTED_INTR_DESC_ADDR"),
    (0x2018, "VM_FUNCTION_CONTROL"),
    (0x201A, "EPT_POINTER"),
    (0x201C, "EOI_EXIT_BITMAP0"),
    (0x201E, "EOI_EXIT_BITMAP1"),
    (0x2020, "EOI_EXIT_BITMAP2"),
    (0x2022, "EOI_EXIT_BITMAP3"),
    (0x2024, "EPTP_LIST_ADDRESS"),
    (0x2026, "VMREAD_BITMAP"),
    (0x2028, "VMWRITE_BITMAP"),
    (0x202A, "VE_INFORMATION_ADDRESS"),
    (0x202C, "XSS_EXIT_BITMAP"),
    (0x202E, "ENCLS_EXITING_BITMAP"),
    (0x2030, "SPP_TABLE_POINTER"),
    (0x2032, "TSC_MULTIPLIER"),
    (0x2034, "TERTIARY_VM_EXEC_CONTROL"),
    (0x2036, "ENCLV_EXITING_BITMAP"),
    (0x2038, "LOW_PASID_DIRECTORY_ADDRESS"),
    (0x203A, "HIGH_PASID_DIRECTORY_ADDRESS"),
    (0x203C, "SHARED_EPT_POINTER"),
    (0x203E, "PCONFIG_EXITING_BITMAP"),
    (0x2040, "HLAT_POINTER"),
    (0x2042, "PID_POINTER_TABLE"),
    (0x2044, "SECONDARY_VM_EXIT_CONTROLS"),
    (0x204A, "SPEC_CTRL_MASK"),
    (0x204C, "SPEC_CTRL_SHADOW"),
    (0x2052, "INJECTED_EVENT_DATA"),
    # B.2.2 64-bit read-only data fields
    (0x2400, "GUEST_PHYSICAL_ADDRESS"),
    (0x2404, "ORIGINAL_EVENT_DATA"),
    # B.2.3 64-bit guest-state fields
    (0x2800, "VMCS_LINK_POINTER"),
    (0x2802, "GUEST_IA32_DEBUGCTL"),
    (0x2804, "GUEST_IA32_PAT"),
    (0x2806, "GUEST_IA32_EFER"),
    (0x2808, "GUEST_IA32_PERF_GLOBAL_CTRL"),
    (0x280A, "GUEST_PDPTR0"),
    (0x280C, "GUEST_PDPTR1"),
    (0x280E, "GUEST_PDPTR2"),
    (0x2810, "GUEST_PDPTR3"),
    (0x2812, "GUEST_BNDCFGS"),
    (0x2814, "GUEST_IA32_RTIT_CTL"),
    (0x2816, "GUEST_IA32_LBR_CTL"),
    (0x2818, "GUEST_IA32_PKRS"),
    (0x281A, "GUEST_IA32_FRED_CONFIG"),
    (0x281C, "GUEST_IA32_FRED_RSP1"),
    (0x281E, "GUEST_IA32_FRED_RSP2"),
    (0x2820, "GUEST_IA32_FRED_RSP3"),
    (0x2822, "GUEST_IA32_FRED_STKLVLS"),
    (0x2824, "GUEST_IA32_FRED_SSP1"),
    (0x2826, "GUEST_IA32_FRED_SSP2"),
    (0x2828, "GUEST_IA32_FRED_SSP3"),
    # B.2.4 64-bit host-state fields
    (0x2C00, "HOST_IA32_PAT"),
    (0x2C02, "HOST_IA32_EFER"),
    (0x2C04, "HOST_IA32_PERF_GLOBAL_CTRL"),
    (0x2C06, "HOST_IA32_PKRS"),
    (0x2C08, "HOST_IA32_FRED_CONFIG"),
    (0x2C0A, "HOST_IA32_FRED_RSP1"),
    (0x2C0C, "HOST_IA32_FRED_RSP2"),
    (0x2C0E, "HOST_IA32_FRED_RSP3"),
    (0x2C10, "HOST_IA32_FRED_STKLVLS"),
    (0x2C12, "HOST_IA32_FRED_SSP1"),
    (0x2C14, "HOST_IA32_FRED_SSP2"),
    (0x2C16, "HOST_IA32_FRED_SSP3"),
    # B.3.1 32-bit control fields
    (0x4000, "PIN_BASED_VM_EXEC_CONTROL"),
    (0x4002, "CPU_BASED_VM_EXEC_CONTROL"),
    (0x4004, "EXCEPTION_BITMAP"),
    (0x4006, "PAGE_FAULT_ERROR_CODE_MASK"),
    (0x4008, "PAGE_FAULT_ERROR_CODE_MATCH"),
    (0x400A, "CR3_TARGET_COUNT"),
    (0x400C, "VM_EXIT_CONTROLS"),
    (0x400E, "VM_EXIT_MSR_STORE_COUNT"),
    (0x4010, "VM_EXIT_MSR_LOAD_COUNT"),
    (0x4012, "VM_ENTRY_CONTROLS"),
    (0x4014, "VM_ENTRY_MSR_LOAD_COUNT"),
    (0x4016, "VM_ENTRY_INTR_INFO"),
    (0x4018, "VM_ENTRY_EXCEPTION_ERROR_CODE"),
    (0x401A, "VM_ENTRY_INSTRUCTION_LEN"),
    (0x401C, "TPR_THRESHOLD"),
    (0x401E, "SECONDARY_VM_EXEC_CONTROL"),
    (0x4020, "PLE_GAP"),
    (0x4022, "PLE_WINDOW"),
    (0x4024, "NOTIFY_WINDOW"),
    # B.3.2 32-bit read-only data fields
    (0x4400, "VM_INSTRUCTION_ERROR"),
    (0x4402, "VM_EXIT_REASON"),
    (0x4404, "VM_EXIT_INTR_INFO"),
    (0x4406, "VM_EXIT_INTR_ERROR_CODE"),
    (0x4408, "IDT_VECTORING_INFO"),
    (0x440A, "IDT_VECTORING_ERROR_CODE"),
    (0x440C, "VM_EXIT_INSTRUCTION_LEN"),
    (0x440E, "VMX_INSTRUCTION_INFO"),
    # B.3.3 32-bit guest-state fields
    (0x4800, "GUEST_ES_LIMIT"),
    (0x4802, "GUEST_CS_LIMIT"),
    (0x4804, "GUEST_SS_LIMIT"),
    (0x4806, "GUEST_DS_LIMIT"),
    (0x4808, "GUEST_FS_LIMIT"),
    (0x480A, "GUEST_GS_LIMIT"),
    (0x480C, "GUEST_LDTR_LIMIT"),
    (0x480E, "GUEST_TR_LIMIT"),
    (0x4810, "GUEST_GDTR_LIMIT"),
    (0x4812, "GUEST_IDTR_LIMIT"),
    (0x4814, "GUEST_ES_AR_BYTES"),
    (0x4816, "GUEST_CS_AR_BYTES"),
    (0x4818, "GUEST_SS_AR_BYTES"),
    (0x481A, "GUEST_DS_AR_BYTES"),
    (0x481C, "GUEST_FS_AR_BYTES"),
    (0x481E, "GUEST_GS_AR_BYTES"),
    (0x4820, "GUEST_LDTR_AR_BYTES"),
    (0x4822, "GUEST_TR_AR_BYTES"),
    (0x4824, "GUEST_INTERRUPTIBILITY_INFO"),
    (0x4826, "GUEST_ACTIVITY_STATE"),
    (0x4828, "GUEST_SMBASE"),
    (0x482A, "GUEST_SYSENTER_CS"),
    (0x482E, "VMX_PREEMPTION_TIMER_VALUE"),
    # B.3.4 32-bit host-state field
    (0x4C00, "HOST_IA32_SYSENTER_CS"),
    # B.4.1 natural-width control fields
    (0x6000, "CR0_GUEST_HOST_MASK"),
    (0x6002, "CR4_GUEST_HOST_MASK"),
    (0x6004, "CR0_READ_SHADOW"),
    (0x6006, "CR4_READ_SHADOW"),
    (0x6008, "CR3_TARGET_VALUE0"),
    (0x600A, "CR3_TARGET_VALUE1"),
    (0x600C, "CR3_TARGET_VALUE2"),
    (0x600E, "CR3_TARGET_VALUE3"),
    # B.4.2 natural-width read-only data fields
    (0x6400, "EXIT_QUALIFICATION"),
    (0x6402, "IO_RCX"),
    (0x6404, "IO_RSI"),
    (0x6406, "IO_RDI"),
    (0x6408, "IO_RIP"),
    (0x640A, "GUEST_LINEAR_ADDRESS"),
    # B.4.3 natural-width guest-state fields
    (0x6800, "GUEST_CR0"),
    (0x6802, "GUEST_CR3"),
    (0x6804, "GUEST_CR4"),
    (0x6806, "GUEST_ES_BASE"),
    (0x6808, "GUEST_CS_BASE"),
    (0x680A, "GUEST_SS_BASE"),
    (0x680C, "GUEST_DS_BASE"),
    (0x680E, "GUEST_FS_BASE"),
    (0x6810, "GUEST_GS_BASE"),
    (0x6812, "GUEST_LDTR_BASE"),
    (0x6814, "GUEST_TR_BASE"),
    (0x6816, "GUEST_GDTR_BASE"),
    (0x6818, "GUEST_IDTR_BASE"),
    (0x681A, "GUEST_DR7"),
    (0x681C, "GUEST_RSP"),
    (0x681E, "GUEST_RIP"),
    (0x6820, "GUEST_RFLAGS"),
    (0x6822, "GUEST_PENDING_DBG_EXCEPTIONS"),
    (0x6824, "GUEST_SYSENTER_ESP"),
    (0x6826, "GUEST_SYSENTER_EIP"),
    (0x6828, "GUEST_S_CET"),
    (0x682A, "GUEST_SSP"),
    (0x682C, "GUEST_INTR_SSP_TABLE_ADDR"),
    # B.4.4 natural-width host-state fields
    (0x6C00, "HOST_CR0"),
    (0x6C02, "HOST_CR3"),
    (0x6C04, "HOST_CR4"),
    (0x6C06, "HOST_FS_BASE"),
    (0x6C08, "HOST_GS_BASE"),
    (0x6C0A, "HOST_TR_BASE"),
    (0x6C0C, "HOST_GDTR_BASE"),
    (0x6C0E, "HOST_IDTR_BASE"),
    (0x6C10, "HOST_IA32_SYSENTER_ESP"),
    (0x6C12, "HOST_IA32_SYSENTER_EIP"),
    (0x6C14, "HOST_RSP"),
    (0x6C16, "HOST_RIP"),
    (0x6C18, "HOST_S_CET"),
    (0x6C1A, "HOST_SSP"),
    (0x6C1C, "HOST_INTR_SSP_TABLE_ADDR"),
)

#: encoding -> field, for every full-access encoding the SDM defines.
FIELDS: Final[dict[int, VmcsField]] = {enc: VmcsField(enc, name) for enc, name in _TABLE}
#: name -> field.
BY_NAME: Final[dict[str, VmcsField]] = {f.name: f for f in FIELDS.values()}
#: SDM order of each encoding (for stable display order).
ORDER: Final[dict[int, int]] = {enc: i for i, (enc, _) in enumerate(_TABLE)}


def field(encoding: int) -> VmcsField | None:
    """The field with this full-access encoding, or None."""
    return FIELDS.get(encoding)


def encoding_of(name: str) -> int:
    """The encoding of a field by name (KeyError if unknown)."""
    return BY_NAME[name].encoding


def name_of(encoding: int) -> str:
    """A field's name; a high-access encoding is named ``<NAME>_HIGH``; unknown ones by their bits."""
    f = FIELDS.get(encoding)
    if f is not None:
        return f.name
    bits = split_encoding(encoding)
    if bits.high and not bits.reserved_set and bits.width == Width.W64:
        full = FIELDS.get(bits.full_encoding)
        if full is not None:
            return full.name + "_HIGH"
    return f"FIELD_{encoding:04X}"
