"""VMCS field encodings against the Intel SDM Vol. 3D Appendix B (sections B.1-B.4) and the encoding
structure of SDM Vol. 3C 25.11.2 ("Structure of VMCS Component Encoding"), and against the
hypervisor's own enum in hv/include/hv/vmx/vmcs.h."""

from __future__ import annotations

import re

import pytest

from hvtrace import paths
from hvtrace.decode.vmcs_fields import (
    BY_NAME,
    FIELDS,
    Group,
    Width,
    encoding_of,
    make_encoding,
    name_of,
    split_encoding,
)


@pytest.mark.parametrize(
    ("name", "encoding"),
    [
        ("VIRTUAL_PROCESSOR_ID", 0x0000),  # B.1.1
        ("GUEST_ES_SELECTOR", 0x0800),  # B.1.2
        ("HOST_TR_SELECTOR", 0x0C0C),  # B.1.3
        ("IO_BITMAP_A", 0x2000),  # B.2.1
        ("EPT_POINTER", 0x201A),  # B.2.1
        ("TSC_MULTIPLIER", 0x2032),  # B.2.1
        ("TERTIARY_VM_EXEC_CONTROL", 0x2034),  # B.2.1
        ("GUEST_PHYSICAL_ADDRESS", 0x2400),  # B.2.2
        ("VMCS_LINK_POINTER", 0x2800),  # B.2.3
        ("GUEST_PDPTR3", 0x2810),  # B.2.3
        ("HOST_IA32_EFER", 0x2C02),  # B.2.4
        ("PIN_BASED_VM_EXEC_CONTROL", 0x4000),  # B.3.1
        ("SECONDARY_VM_EXEC_CONTROL", 0x401E),  # B.3.1
        ("VM_INSTRUCTION_ERROR", 0x4400),  # B.3.2
        ("VM_EXIT_REASON", 0x4402),  # B.3.2
        ("VMX_INSTRUCTION_INFO", 0x440E),  # B.3.2
        ("GUEST_CS_AR_BYTES", 0x4816),  # B.3.3
        ("GUEST_ACTIVITY_STATE", 0x4826),  # B.3.3
        ("VMX_PREEMPTION_TIMER_VALUE", 0x482E),  # B.3.3
        ("HOST_IA32_SYSENTER_CS", 0x4C00),  # B.3.4
        ("CR0_GUEST_HOST_MASK", 0x6000),  # B.4.1
        ("EXIT_QUALIFICATION", 0x6400),  # B.4.2
        ("GUEST_LINEAR_ADDRESS", 0x640A),  # B.4.2
        ("GUEST_CR3", 0x6802),  # B.4.3
        ("GUEST_RIP", 0x681E),  # B.4.3
        ("HOST_RIP", 0x6C16),  # B.4.4
    ],
)
def test_known_encodings(name: str, encoding: int) -> None:
    assert encoding_of(name) == encoding
    assert name_of(encoding) == name


def test_width_and_group_follow_from_the_encoding() -> None:
    """SDM 25.11.2: bits 14:13 width, 11:10 type."""
    assert (BY_NAME["GUEST_RIP"].width, BY_NAME["GUEST_RIP"].group) == (Width.NATURAL, Group.GUEST)
    assert (BY_NAME["VM_EXIT_REASON"].width, BY_NAME["VM_EXIT_REASON"].group) == (Width.W32, Group.EXIT_INFO)
    assert (BY_NAME["EPT_POINTER"].width, BY_NAME["EPT_POINTER"].group) == (Width.W64, Group.CONTROL)
    assert (BY_NAME["HOST_CS_SELECTOR"].width, BY_NAME["HOST_CS_SELECTOR"].group) == (Width.W16, Group.HOST)
    assert BY_NAME["GUEST_ES_SELECTOR"].mask(0x1_2345) == 0x2345


def test_split_encoding_of_a_high_access() -> None:
    bits = split_encoding(0x201B)  # EPT_POINTER_HIGH
    assert bits.high
    assert bits.index == 13
    assert bits.group == Group.CONTROL
    assert bits.width == Width.W64
    assert not bits.reserved_set
    assert bits.full_encoding == 0x201A
    assert name_of(0x201B) == "EPT_POINTER_HIGH"
    assert split_encoding(0x1000).reserved_set
    assert name_of(0x4FFE) == "FIELD_4FFE"


def test_make_encoding_round_trips_for_every_field() -> None:
    for enc, f in FIELDS.items():
        bits = split_encoding(enc)
        assert not bits.high
        assert not bits.reserved_set
        assert make_encoding(bits.width, bits.group, bits.index) == enc, f.name
    assert len({f.name for f in FIELDS.values()}) == len(FIELDS)


def test_the_hypervisor_enum_agrees() -> None:
    """Every encoding the hypervisor names in vmcs.h has the same name here."""
    text = (paths.hv_dir() / "include" / "hv" / "vmx" / "vmcs.h").read_text()
    enum = text[text.index("enum vmcs_field") : text.index("};")]
    pairs = re.findall(r"\b([A-Z0-9_]+)\s*=\s*(0x[0-9a-fA-F]+)", enum)
    assert len(pairs) > 100
    for name, enc in pairs:
        assert name_of(int(enc, 16)) == name, (name, enc)
