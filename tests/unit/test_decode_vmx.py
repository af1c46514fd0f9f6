"""VMX control bits, value formats, exit reasons and exit qualifications.

Values from the Intel SDM (2023-2024 numbering): Vol. 3C 25.6.1-25.6.2 Tables 25-5..25-8 (execution
controls), 25.7.1 / 25.8.1 (exit / entry controls), 25.4.1 Table 25-2 (access rights), 25.4.2
(interruptibility, activity state), 25.9.1 (exit-reason format), 25.9.2 (interruption information),
28.2.1 Tables 28-1..28-7 (exit qualifications), 28.2.5 (instruction information), 27.8 (VM-entry
failures), 31.4 Table 31-1 (VM-instruction errors); Vol. 3D Appendix C Table C-1 (basic exit reasons).
hv/vmx/names.c is parsed and compared, so the hypervisor and the tools never disagree on a name.
"""

from __future__ import annotations

import re

import pytest

from hvtrace import paths
from hvtrace.decode import vmx_controls as ctl
from hvtrace.decode import vmx_exits as ex
from hvtrace.decode import vmx_qualifications as qual


def _c_table(array: str) -> dict[int, str]:
    text = (paths.hv_dir() / "vmx" / "names.c").read_text()
    start = text.index(array)
    body = text[start : text.index("};", start)]
    return {int(i): s for i, s in re.findall(r"\[(\d+)\]\s*=\s*\"([^\"]+)\"", body)}


def test_every_exit_reason_name_in_names_c_matches() -> None:
    c = _c_table("exit_reasons[")
    assert len(c) > 60
    for reason, name in c.items():
        assert ex.EXIT_REASONS[reason] == name, reason
        assert ex.exit_reason_name(reason) == name


def test_vm_instruction_errors_mirror_names_c_exactly() -> None:
    assert _c_table("instruction_errors[") == dict(ctl.VM_INSTRUCTION_ERRORS)
    assert ctl.vm_instruction_error_name(7) == "VM entry with invalid control field(s)"
    assert ctl.vm_instruction_error_name(14) == "unknown VM-instruction error"


@pytest.mark.parametrize(
    ("reason", "name"),
    [
        (0, "EXCEPTION_NMI"),
        (10, "CPUID"),
        (18, "VMCALL"),
        (28, "CR_ACCESS"),
        (30, "IO_INSTRUCTION"),
        (48, "EPT_VIOLATION"),
        (49, "EPT_MISCONFIG"),
        (55, "XSETBV"),
        (62, "PML_FULL"),
        (77, "TDCALL"),
    ],
)
def test_basic_exit_reasons_table_c1(reason: int, name: str) -> None:
    assert ex.EXIT_REASONS[reason] == name
    assert ex.NAME_TO_REASON[name] == reason


def test_exit_reason_table_covers_0_to_77_except_the_unused_numbers() -> None:
    assert set(range(78)) - set(ex.EXIT_REASONS) == {35, 38, 42, 71}
    assert set(ex.EXIT_REASON_DESCRIPTIONS) == set(ex.EXIT_REASONS)
    assert ex.exit_reason_name(35) == "UNKNOWN"


def test_exit_reason_format() -> None:
    """25.9.1: bit 31 VM-entry failure; 33 = invalid guest state."""
    er = ex.decode_exit_reason(0x8000_0021)
    assert er.entry_failure
    assert er.basic == 33
    assert er.name == "INVALID_GUEST_STATE"
    assert er.describe() == "33 INVALID_GUEST_STATE (VM-entry failure)"
    assert ex.decode_exit_reason(0x1000_0000 | 10).pending_mtf


def test_control_bits() -> None:
    """Table 25-7: secondary bit 1 enable EPT, bit 5 enable VPID, bit 7 unrestricted guest."""
    assert ctl.SECONDARY_PROCBASED[1] == "ENABLE_EPT"
    assert ctl.SECONDARY_PROCBASED[5] == "ENABLE_VPID"
    assert ctl.SECONDARY_PROCBASED[7] == "UNRESTRICTED_GUEST"
    assert ctl.SECONDARY_PROCBASED[25] == "USE_TSC_SCALING"
    assert ctl.PRIMARY_PROCBASED[31] == "ACTIVATE_SECONDARY_CONTROLS"  # Table 25-6
    assert ctl.PRIMARY_PROCBASED[28] == "USE_MSR_BITMAPS"
    assert ctl.PIN_BASED[6] == "ACTIVATE_PREEMPTION_TIMER"  # Table 25-5
    assert ctl.PRIMARY_EXIT[9] == "HOST_ADDRESS_SPACE_SIZE"  # 25.7.1
    assert ctl.ENTRY[9] == "IA32E_MODE_GUEST"  # 25.8.1
    assert ctl.bit_names(0x82, ctl.SECONDARY_PROCBASED) == ["ENABLE_EPT", "UNRESTRICTED_GUEST"]
    assert ctl.bit_names(1 << 29, ctl.SECONDARY_PROCBASED) == ["bit29"]


# hv/include/hv/vmx/vmx.h macro -> (table, name here)
_HV_CONTROLS = {
    "PIN_EXTERNAL_INTERRUPT_EXITING": (ctl.PIN_BASED, "EXTERNAL_INTERRUPT_EXITING"),
    "PIN_NMI_EXITING": (ctl.PIN_BASED, "NMI_EXITING"),
    "PIN_VIRTUAL_NMIS": (ctl.PIN_BASED, "VIRTUAL_NMIS"),
    "PIN_PREEMPTION_TIMER": (ctl.PIN_BASED, "ACTIVATE_PREEMPTION_TIMER"),
    "CPU_USE_TSC_OFFSETTING": (ctl.PRIMARY_PROCBASED, "USE_TSC_OFFSETTING"),
    "CPU_HLT_EXITING": (ctl.PRIMARY_PROCBASED, "HLT_EXITING"),
    "CPU_RDPMC_EXITING": (ctl.PRIMARY_PROCBASED, "RDPMC_EXITING"),
    "CPU_NMI_WINDOW_EXITING": (ctl.PRIMARY_PROCBASED, "NMI_WINDOW_EXITING"),
    "CPU_MONITOR_TRAP_FLAG": (ctl.PRIMARY_PROCBASED, "MONITOR_TRAP_FLAG"),
    "CPU_CR3_LOAD_EXITING": (ctl.PRIMARY_PROCBASED, "CR3_LOAD_EXITING"),
    "CPU_CR3_STORE_EXITING": (ctl.PRIMARY_PROCBASED, "CR3_STORE_EXITING"),
    "CPU_USE_IO_BITMAPS": (ctl.PRIMARY_PROCBASED, "USE_IO_BITMAPS"),
    "CPU_USE_MSR_BITMAPS": (ctl.PRIMARY_PROCBASED, "USE_MSR_BITMAPS"),
    "CPU_ACTIVATE_SECONDARY": (ctl.PRIMARY_PROCBASED, "ACTIVATE_SECONDARY_CONTROLS"),
    "CPU2_ENABLE_EPT": (ctl.SECONDARY_PROCBASED, "ENABLE_EPT"),
    "CPU2_ENABLE_RDTSCP": (ctl.SECONDARY_PROCBASED, "ENABLE_RDTSCP"),
    "CPU2_ENABLE_VPID": (ctl.SECONDARY_PROCBASED, "ENABLE_VPID"),
    "CPU2_UNRESTRICTED_GUEST": (ctl.SECONDARY_PROCBASED, "UNRESTRICTED_GUEST"),
    "CPU2_ENABLE_INVPCID": (ctl.SECONDARY_PROCBASED, "ENABLE_INVPCID"),
    "CPU2_ENABLE_XSAVES": (ctl.SECONDARY_PROCBASED, "ENABLE_XSAVES_XRSTORS"),
    "EXIT_SAVE_DEBUG_CONTROLS": (ctl.PRIMARY_EXIT, "SAVE_DEBUG_CONTROLS"),
    "EXIT_HOST_ADDR_SPACE_SIZE": (ctl.PRIMARY_EXIT, "HOST_ADDRESS_SPACE_SIZE"),
    "EXIT_ACK_INTR_ON_EXIT": (ctl.PRIMARY_EXIT, "ACKNOWLEDGE_INTERRUPT_ON_EXIT"),
    "EXIT_SAVE_PAT": (ctl.PRIMARY_EXIT, "SAVE_IA32_PAT"),
    "EXIT_LOAD_PAT": (ctl.PRIMARY_EXIT, "LOAD_IA32_PAT"),
    "EXIT_SAVE_EFER": (ctl.PRIMARY_EXIT, "SAVE_IA32_EFER"),
    "EXIT_LOAD_EFER": (ctl.PRIMARY_EXIT, "LOAD_IA32_EFER"),
    "ENTRY_LOAD_DEBUG_CONTROLS": (ctl.ENTRY, "LOAD_DEBUG_CONTROLS"),
    "ENTRY_IA32E_MODE_GUEST": (ctl.ENTRY, "IA32E_MODE_GUEST"),
    "ENTRY_LOAD_PAT": (ctl.ENTRY, "LOAD_IA32_PAT"),
    "ENTRY_LOAD_EFER": (ctl.ENTRY, "LOAD_IA32_EFER"),
}


def test_control_bits_agree_with_the_hypervisor_header() -> None:
    """The controls hv/include/hv/vmx/vmx.h sets sit at the same bit here."""
    text = (paths.hv_dir() / "include" / "hv" / "vmx" / "vmx.h").read_text()
    defined = dict(re.findall(r"#define ((?:PIN|CPU2?|EXIT|ENTRY)_\w+)\s+\(1u << (\d+)\)", text))
    defined.pop("EXIT_REASON_ENTRY_FAILURE", None)  # bit 31 of the exit reason, not a control
    assert set(defined) == set(_HV_CONTROLS), "a control was added to vmx.h: name it in _HV_CONTROLS"
    for macro, bit in defined.items():
        table, name = _HV_CONTROLS[macro]
        assert ctl.bit_of(table, name) == int(bit), macro


def test_exception_bitmap_names() -> None:
    assert ctl.exception_bitmap_names((1 << 14) | (1 << 6) | (1 << 1)) == ["#DB", "#UD", "#PF"]


def test_segment_access_rights_table_25_2() -> None:
    cs = ctl.decode_access_rights(0xA09B)  # 64-bit ring-0 code
    assert (cs.type, cs.s, cs.dpl, cs.p, cs.l, cs.db, cs.g) == (0xB, True, 0, True, True, False, True)
    assert "code, execute/read, accessed" in cs.describe()
    tr = ctl.decode_access_rights(0x008B)
    assert tr.type_name == "32/64-bit TSS (busy)"
    assert ctl.decode_access_rights(0x1_0000).describe() == "unusable"
    ss3 = ctl.decode_access_rights(0xC0F3)
    assert ss3.dpl == 3
    assert ss3.db


def test_interruptibility_and_activity() -> None:
    assert ctl.bit_names(0b1001, ctl.INTERRUPTIBILITY) == ["BLOCKING_BY_STI", "BLOCKING_BY_NMI"]
    assert ctl.activity_state_name(3) == "WAIT_FOR_SIPI"
    assert ctl.activity_state_name(9) == "reserved (9)"


def test_cr_bits() -> None:
    assert ctl.bit_names(0x8000_0031, ctl.CR0_BITS) == ["PE", "ET", "NE", "PG"]
    assert ctl.bit_names(0x2020, ctl.CR4_BITS) == ["PAE", "VMXE"]
    assert ctl.describe_rflags(0x202) == "IF IOPL=0"


def test_cr_access_qualification_table_28_3() -> None:
    """MOV to CR3 from R10: CR number 3 (bits 3:0), access type 0 (5:4), GPR 10 (11:8) -> 0xA03."""
    q = qual.decode_cr_access(0xA03)
    assert (q.cr, q.access_type, q.gpr) == (3, 0, 10)
    assert q.describe() == "MOV CR3, R10"
    assert qual.decode_cr_access(0x0113).describe() == "MOV RCX, CR3"  # type 1, RCX
    assert qual.decode_cr_access(0x0020).describe() == "CLTS"
    lmsw = qual.decode_cr_access(0x0001_0070)  # LMSW, memory operand, data 0x0001
    assert (lmsw.access_type, lmsw.lmsw_memory, lmsw.lmsw_data) == (3, True, 1)
    assert qual.describe_qualification(28, 0xA03) == "MOV CR3, R10"


def test_dr_access_qualification_table_28_4() -> None:
    assert qual.decode_dr_access(0x0317).describe() == "MOV RBX, DR7"
    assert qual.decode_dr_access(0x0800).describe() == "MOV DR0, R8"


def test_io_qualification_table_28_5() -> None:
    """IN EAX, DX on port 0xCF8: size 4 (bits 2:0 = 3), IN (bit 3), DX (bit 6 = 0), port 31:16."""
    io = qual.decode_io(0x0CF8_0000 | 0x8 | 0x3)
    assert (io.size, io.is_in, io.string, io.rep, io.immediate, io.port) == (
        4,
        True,
        False,
        False,
        False,
        0xCF8,
    )
    rep_outsb = qual.decode_io(0x03F8_0000 | 0x20 | 0x10 | 0x40)
    assert rep_outsb.describe() == "REP OUTS port 0x03f8 (imm8), 1 byte"


def test_ept_violation_qualification_table_28_7() -> None:
    """A write (bit 1) to a read-only entry (bit 3) with a valid GLA (7) of the final translation (8)."""
    v = qual.decode_ept_violation(0x18A)
    assert (v.read, v.write, v.fetch) == (False, True, False)
    assert (v.entry_r, v.entry_w, v.entry_x) == (True, False, False)
    assert v.gla_valid
    assert v.gla_translation
    assert v.describe() == "access -w-, entry r--, GLA valid: the translated address"
    walk = qual.decode_ept_violation(0x81)
    assert walk.describe().endswith("a guest paging-structure access")
    assert qual.decode_ept_violation(1 << 12).nmi_unblocking


def test_debug_and_task_switch_qualifications() -> None:
    assert qual.describe_debug_exception(0x4001) == "B0 BS"  # Table 28-1
    ts = qual.decode_task_switch(0x8000_0028)  # Table 28-2: JMP to selector 0x28
    assert ts.describe() == "to TSS selector 0x0028 by JMP"
    assert qual.describe_qualification(9, 0xC000_0030) == "to TSS selector 0x0030 by task gate in IDT"


def test_invalidation_type_from_instruction_information() -> None:
    """28.2.5: INVEPT with reg2 (31:28) = RCX, base RAX (26:23), no index (22), 64-bit address (9:7)."""
    info = (1 << 28) | (0 << 23) | (1 << 22) | (2 << 7) | (3 << 15)
    text = qual.describe_invalidation(50, 0, info, {"RCX": 1})
    assert text == "INVEPT type in RCX, descriptor at DS:[RAX]; type 1 = single-context"
    assert str(qual.describe_qualification(53, 0x10, info, {"RCX": 3})).endswith(
        "single-context-retaining-globals"
    )
    assert "all-context-including-globals" in qual.describe_invalidation(58, 8, info, {"RCX": 2})
    assert qual.describe_descriptor_table(46, 3 << 28) == "LIDT"
    assert qual.describe_descriptor_table(47, 1 << 28) == "STR"


def test_entry_failure_qualifications_27_8() -> None:
    assert str(qual.describe_qualification(0x8000_0021, 2)).endswith("failure loading PDPTEs")
    assert str(qual.describe_qualification(0x8000_0021, 4)).endswith("invalid VMCS link pointer")
    assert str(qual.describe_qualification(0x8000_0022, 3)).endswith("MSR-load entry 3 (1-based)")


def test_interruption_information() -> None:
    """25.9.2: #GP hardware exception with error code: vector 13, type 3, bit 11, valid bit 31."""
    i = ex.decode_interruption_info(0x8000_0B0D)
    assert (i.vector, i.type, i.error_code_valid, i.valid) == (13, 3, True, True)
    assert i.describe() == "hardware exception #GP, error code valid"
    nmi = ex.decode_interruption_info(0x8000_1202)
    assert nmi.describe() == "NMI NMI, NMI unblocking due to IRET"
    assert ex.decode_interruption_info(0x20).describe() == "not valid"
    ext = ex.decode_interruption_info(0x8000_0030)
    assert ext.describe() == "external interrupt vector 0x30"
