"""The VMCS snapshot view: grouping, order, decoded details and the "meaningful only" filter.

Encodings from SDM Vol. 3D Appendix B; control bits from SDM Vol. 3C Tables 25-5..25-7 and 25.7.1 /
25.8.1; which fields are meaningful follows the controls that enable them (e.g. the EPT pointer with
secondary bit 1 "enable EPT", 25.6.11; the VPID with bit 5, 25.6.12; PML with bit 17, 25.6.18; TSC
multiplier with bit 25, 25.6.5), as KVM's dump_vmcs() does.
"""

from __future__ import annotations

import pytest

from hvtrace.decode.vmcs_fields import encoding_of
from hvtrace.decode.vmcs_view import Vmcs, build_rows, is_meaningful, vmcs_view

ACTIVATE_SECONDARY = 1 << 31
EPT, VPID, UG, PML, TSC_SCALING = 1 << 1, 1 << 5, 1 << 7, 1 << 17, 1 << 25


def snapshot(**values: int) -> list[tuple[int, int]]:
    base = {
        "PIN_BASED_VM_EXEC_CONTROL": 0x16,
        "CPU_BASED_VM_EXEC_CONTROL": ACTIVATE_SECONDARY | 1 << 28,
        "SECONDARY_VM_EXEC_CONTROL": EPT | UG,
        "VM_EXIT_CONTROLS": 1 << 9 | 0x36DFF,
        "VM_ENTRY_CONTROLS": 1 << 9 | 0x11FF,
        "EXCEPTION_BITMAP": 1 << 14,
        "VIRTUAL_PROCESSOR_ID": 1,
        "EPT_POINTER": 0x10_0000 | 0x5E,
        "PML_ADDRESS": 0x20_0000,
        "TSC_MULTIPLIER": 1 << 48,
        "VMX_PREEMPTION_TIMER_VALUE": 0,
        "VM_INSTRUCTION_ERROR": 0,
        "VM_EXIT_REASON": 48,
        "EXIT_QUALIFICATION": 0x18A,
        "GUEST_PHYSICAL_ADDRESS": 0xFEE0_0000,
        "GUEST_RIP": 0xFFFF_8000_0000_1000,
        "GUEST_CR0": 0x8000_0031,
        "GUEST_CR4": 0x2020,
        "GUEST_CS_AR_BYTES": 0xA09B,
        "GUEST_CS_SELECTOR": 0x10,
        "GUEST_INTERRUPTIBILITY_INFO": 1,
        "GUEST_ACTIVITY_STATE": 0,
        "GUEST_PDPTR0": 0x1001,
        "HOST_RIP": 0xFFFF_FFFF_8000_0000,
        "HOST_IA32_EFER": 0xD01,
    }
    base.update(values)
    return [(encoding_of(n), v) for n, v in base.items()]


def names(rows: list) -> list[str]:  # type: ignore[type-arg]
    return [r.name for r in rows]


def test_groups_and_order() -> None:
    rows = build_rows(snapshot(), all_fields=True)
    areas = [r.area for r in rows]
    assert areas == sorted(areas, key=["guest", "host", "controls", "exit"].index)
    guest = [r.name for r in rows if r.area == "guest"]
    assert guest[:2] == ["GUEST_CR0", "GUEST_CR4"]  # registers first
    assert guest.index("GUEST_RIP") < guest.index("GUEST_CS_SELECTOR") < guest.index("GUEST_CS_AR_BYTES")


def test_meaningful_only_hides_what_the_controls_leave_unused() -> None:
    shown = names(build_rows(snapshot()))
    assert "EPT_POINTER" in shown  # enable EPT is set
    assert "GUEST_PHYSICAL_ADDRESS" in shown
    assert "VIRTUAL_PROCESSOR_ID" not in shown  # enable VPID is clear
    assert "PML_ADDRESS" not in shown
    assert "TSC_MULTIPLIER" not in shown
    assert "VMX_PREEMPTION_TIMER_VALUE" not in shown
    assert "VM_INSTRUCTION_ERROR" not in shown  # zero
    assert "GUEST_PDPTR0" not in shown  # IA-32e guest: PDPTEs unused
    assert "HOST_IA32_EFER" not in shown  # exit control load-EFER clear
    everything = names(build_rows(snapshot(), all_fields=True))
    assert {"VIRTUAL_PROCESSOR_ID", "PML_ADDRESS", "TSC_MULTIPLIER", "GUEST_PDPTR0"} <= set(everything)


def test_meaningful_fields_appear_with_their_controls() -> None:
    snap = snapshot(
        SECONDARY_VM_EXEC_CONTROL=EPT | VPID | PML | TSC_SCALING,
        PIN_BASED_VM_EXEC_CONTROL=0x16 | 1 << 6,
        VM_EXIT_CONTROLS=1 << 9 | 1 << 21,
    )
    shown = names(build_rows(snap))
    assert {"VIRTUAL_PROCESSOR_ID", "PML_ADDRESS", "TSC_MULTIPLIER", "VMX_PREEMPTION_TIMER_VALUE"} <= set(
        shown
    )
    assert "HOST_IA32_EFER" in shown
    # Secondary controls count only with "activate secondary controls" (Table 25-6 bit 31).
    off = snapshot(CPU_BASED_VM_EXEC_CONTROL=1 << 28, SECONDARY_VM_EXEC_CONTROL=EPT | VPID)
    assert "EPT_POINTER" not in names(build_rows(off))
    assert not is_meaningful(Vmcs(off), "EPT_POINTER", 1)


def test_decoded_details() -> None:
    rows = {r.name: r for r in build_rows(snapshot())}
    assert rows["SECONDARY_VM_EXEC_CONTROL"].details == ["bit  1  ENABLE_EPT", "bit  7  UNRESTRICTED_GUEST"]
    assert "bit  1  (reserved, default 1)" in rows["PIN_BASED_VM_EXEC_CONTROL"].details
    assert rows["EXCEPTION_BITMAP"].details == ["intercepts #PF"]
    assert (
        rows["GUEST_CS_AR_BYTES"].details[0].startswith("type=0xb (code, execute/read, accessed) S=1 DPL=0")
    )
    assert rows["GUEST_CS_SELECTOR"].details == ["index=2 TI=GDT RPL=0"]
    assert rows["VM_EXIT_REASON"].details == ["48 EPT_VIOLATION: EPT violation"]
    assert rows["EXIT_QUALIFICATION"].details == ["access -w-, entry r--, GLA valid: the translated address"]
    assert rows["EPT_POINTER"].details == ["root=0x100000 WB 4-level A/D"]
    assert rows["GUEST_INTERRUPTIBILITY_INFO"].details == ["BLOCKING_BY_STI"]
    assert rows["GUEST_ACTIVITY_STATE"].details == ["ACTIVE"]
    assert rows["GUEST_CR0"].details == ["PE ET NE PG"]
    err = {r.name: r for r in build_rows(snapshot(VM_INSTRUCTION_ERROR=7))}
    assert err["VM_INSTRUCTION_ERROR"].details == ["VM entry with invalid control field(s)"]


def test_exception_exit_qualification_uses_the_vector() -> None:
    snap = snapshot(VM_EXIT_REASON=0, VM_EXIT_INTR_INFO=0x8000_0B0E, EXIT_QUALIFICATION=0xDEAD_0000)
    rows = {r.name: r for r in build_rows(snap)}
    assert rows["EXIT_QUALIFICATION"].details == ["page-fault linear address 0xdead0000"]
    assert rows["VM_EXIT_INTR_INFO"].details == ["hardware exception #PF, error code valid"]


def test_text_output_areas_raw_and_colour() -> None:
    lines = vmcs_view(snapshot(), areas=["exit"])
    assert lines[0] == "*** VM-exit information ***"
    assert lines[1].split() == ["VM_EXIT_REASON", "32", "0x00000030"]
    assert all("GUEST_RIP" not in ln for ln in lines)
    assert all("\x1b" not in ln for ln in vmcs_view(snapshot()))
    assert any("\x1b[36m" in ln for ln in vmcs_view(snapshot(), colourise=True))
    raw = vmcs_view(snapshot(), raw=True)
    assert not any(ln.startswith("      ") for ln in raw)
    guest_rip = next(ln for ln in vmcs_view(snapshot(), areas=["guest"]) if "GUEST_RIP" in ln)
    assert guest_rip.split() == ["GUEST_RIP", "nat", "0xffff800000001000"]
    with pytest.raises(ValueError, match="unknown VMCS area"):
        vmcs_view(snapshot(), areas=["guests"])


def test_unknown_and_high_encodings() -> None:
    rows = build_rows([(0x4FFE, 5), (0x201B, 0), (encoding_of("GUEST_RIP"), 1)], all_fields=False)
    assert names(rows) == ["GUEST_RIP", "FIELD_4FFE"]
    assert names(build_rows([(0x201B, 7)])) == ["EPT_POINTER_HIGH"]
