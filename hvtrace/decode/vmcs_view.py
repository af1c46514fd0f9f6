"""A VMCS snapshot as grouped, decoded text lines (the layout ``hv-vmcs`` prints).

Input: the (encoding, value) pairs of a ``struct hv_snapshot`` (hv/include/hv/abi.h), i.e. every
field the CPU supports, VMREAD by the hypervisor. Output: rows grouped as guest state, host state,
controls and exit information (SDM order within each group), each with name, width and value, plus
decoded detail lines. By default only the fields the current controls make meaningful are shown, in
the spirit of KVM's dump_vmcs() (arch/x86/kvm/vmx/vmx.c): the EPT pointer only with enable-EPT, the
VPID only with enable-VPID, the PML address only with PML, and so on (see ``_MEANINGFUL``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from hvtrace.decode import vmx_controls as ctl
from hvtrace.decode.stage2 import decode_eptp, describe_pat
from hvtrace.decode.vmcs_fields import FIELDS, ORDER, WIDTH_LABEL, Group, Width, name_of, split_encoding
from hvtrace.decode.vmx_exits import EXIT_REASON_DESCRIPTIONS, decode_exit_reason, decode_interruption_info
from hvtrace.decode.vmx_qualifications import describe_exception_qualification, describe_qualification

#: Display areas, in display order.
AREAS: Final = ("guest", "host", "controls", "exit")
AREA_TITLES: Final[Mapping[str, str]] = {
    "guest": "Guest state",
    "host": "Host state",
    "controls": "Control fields",
    "exit": "VM-exit information",
}
_GROUP_AREA: Final[Mapping[Group, str]] = {
    Group.GUEST: "guest",
    Group.HOST: "host",
    Group.CONTROL: "controls",
    Group.EXIT_INFO: "exit",
}
_HEX_DIGITS: Final[Mapping[Width, int]] = {Width.W16: 4, Width.W32: 8, Width.W64: 16, Width.NATURAL: 16}


@dataclass
class Row:
    """One VMCS field as shown."""

    area: str
    encoding: int
    name: str
    width: str
    value: int
    hex_digits: int
    details: list[str] = field(default_factory=list)


class Vmcs:
    """Snapshot values by encoding, with the control bits the filters ask about."""

    def __init__(self, fields: Iterable[tuple[int, int]]) -> None:
        self.values: dict[int, int] = {}
        for enc, value in fields:
            self.values[enc] = value

    def get(self, name: str, default: int = 0) -> int:
        f = _BY_NAME.get(name)
        if f is None:
            return default
        return self.values.get(f, default)

    def has(self, name: str) -> bool:
        f = _BY_NAME.get(name)
        return f is not None and f in self.values

    def _bit(self, field_name: str, table: ctl.BitNames, bit_name: str, *, gate: bool = True) -> bool:
        """A control bit; ``gate``: the control that activates this control field (SDM 25.6.2, 25.7.1)."""
        return gate and bool(self.get(field_name) & ctl.mask_of(table, bit_name))

    def pin(self, name: str) -> bool:
        return self._bit("PIN_BASED_VM_EXEC_CONTROL", ctl.PIN_BASED, name)

    def cpu(self, name: str) -> bool:
        return self._bit("CPU_BASED_VM_EXEC_CONTROL", ctl.PRIMARY_PROCBASED, name)

    def cpu2(self, name: str) -> bool:
        """A secondary control, effective only with activate-secondary-controls (SDM 25.6.2)."""
        gate = self.cpu("ACTIVATE_SECONDARY_CONTROLS")
        return self._bit("SECONDARY_VM_EXEC_CONTROL", ctl.SECONDARY_PROCBASED, name, gate=gate)

    def cpu3(self, name: str) -> bool:
        gate = self.cpu("ACTIVATE_TERTIARY_CONTROLS")
        return self._bit("TERTIARY_VM_EXEC_CONTROL", ctl.TERTIARY_PROCBASED, name, gate=gate)

    def exit(self, name: str) -> bool:
        return self._bit("VM_EXIT_CONTROLS", ctl.PRIMARY_EXIT, name)

    def exit2(self, name: str) -> bool:
        gate = self.exit("ACTIVATE_SECONDARY_CONTROLS")
        return self._bit("SECONDARY_VM_EXIT_CONTROLS", ctl.SECONDARY_EXIT, name, gate=gate)

    def entry(self, name: str) -> bool:
        return self._bit("VM_ENTRY_CONTROLS", ctl.ENTRY, name)


_BY_NAME: Final[Mapping[str, int]] = {f.name: enc for enc, f in FIELDS.items()}

Rule = Callable[[Vmcs, int], bool]  # (snapshot, this field's value) -> meaningful


def _nonzero(_v: Vmcs, value: int) -> bool:
    return value != 0


def _pae_paging(v: Vmcs, _value: int) -> bool:
    """PDPTEs matter with EPT for a PAE-paging guest (CR0.PG, CR4.PAE, not IA-32e mode; SDM 27.3.2.4)."""
    return (
        v.cpu2("ENABLE_EPT")
        and bool(v.get("GUEST_CR0") & 1 << 31)
        and bool(v.get("GUEST_CR4") & 1 << 5)
        and not v.entry("IA32E_MODE_GUEST")
    )


def _cr3_target(n: int) -> Rule:
    return lambda v, _value: v.get("CR3_TARGET_COUNT") > n


def _intr_info_has_code(info_field: str) -> Rule:
    def rule(v: Vmcs, _value: int) -> bool:
        info = decode_interruption_info(v.get(info_field))
        return info.valid and info.error_code_valid

    return rule


def _fred(v: Vmcs, _value: int) -> bool:
    return v.entry("LOAD_IA32_FRED") or v.exit2("SAVE_IA32_FRED")


#: Fields shown only when the controls make them meaningful; every other field is always shown.
_MEANINGFUL: Final[dict[str, Rule]] = {
    # controls
    "VIRTUAL_PROCESSOR_ID": lambda v, _: v.cpu2("ENABLE_VPID"),
    "POSTED_INTR_NV": lambda v, _: v.pin("PROCESS_POSTED_INTERRUPTS"),
    "POSTED_INTR_DESC_ADDR": lambda v, _: v.pin("PROCESS_POSTED_INTERRUPTS"),
    "EPTP_INDEX": lambda v, _: v.cpu2("EPT_VIOLATION_VE") or v.cpu2("ENABLE_VM_FUNCTIONS"),
    "HLAT_PREFIX_SIZE": lambda v, _: v.cpu3("ENABLE_HLAT"),
    "HLAT_POINTER": lambda v, _: v.cpu3("ENABLE_HLAT"),
    "LAST_PID_POINTER_INDEX": lambda v, _: v.cpu3("IPI_VIRTUALIZATION"),
    "PID_POINTER_TABLE": lambda v, _: v.cpu3("IPI_VIRTUALIZATION"),
    "IO_BITMAP_A": lambda v, _: v.cpu("USE_IO_BITMAPS"),
    "IO_BITMAP_B": lambda v, _: v.cpu("USE_IO_BITMAPS"),
    "MSR_BITMAP": lambda v, _: v.cpu("USE_MSR_BITMAPS"),
    "VM_EXIT_MSR_STORE_ADDR": lambda v, _: v.get("VM_EXIT_MSR_STORE_COUNT") > 0,
    "VM_EXIT_MSR_LOAD_ADDR": lambda v, _: v.get("VM_EXIT_MSR_LOAD_COUNT") > 0,
    "VM_ENTRY_MSR_LOAD_ADDR": lambda v, _: v.get("VM_ENTRY_MSR_LOAD_COUNT") > 0,
    "EXECUTIVE_VMCS_POINTER": _nonzero,
    "PML_ADDRESS": lambda v, _: v.cpu2("ENABLE_PML"),
    "GUEST_PML_INDEX": lambda v, _: v.cpu2("ENABLE_PML"),
    "TSC_OFFSET": lambda v, _: v.cpu("USE_TSC_OFFSETTING"),
    "TSC_MULTIPLIER": lambda v, _: v.cpu2("USE_TSC_SCALING"),
    "VIRTUAL_APIC_PAGE_ADDR": lambda v, _: v.cpu("USE_TPR_SHADOW"),
    "TPR_THRESHOLD": lambda v, _: v.cpu("USE_TPR_SHADOW"),
    "APIC_ACCESS_ADDR": lambda v, _: v.cpu2("VIRTUALIZE_APIC_ACCESSES"),
    "VM_FUNCTION_CONTROL": lambda v, _: v.cpu2("ENABLE_VM_FUNCTIONS"),
    "EPTP_LIST_ADDRESS": lambda v, _: (
        v.cpu2("ENABLE_VM_FUNCTIONS") and bool(v.get("VM_FUNCTION_CONTROL") & 1)
    ),
    "EPT_POINTER": lambda v, _: v.cpu2("ENABLE_EPT"),
    "EOI_EXIT_BITMAP0": lambda v, _: v.cpu2("VIRTUAL_INTERRUPT_DELIVERY"),
    "EOI_EXIT_BITMAP1": lambda v, _: v.cpu2("VIRTUAL_INTERRUPT_DELIVERY"),
    "EOI_EXIT_BITMAP2": lambda v, _: v.cpu2("VIRTUAL_INTERRUPT_DELIVERY"),
    "EOI_EXIT_BITMAP3": lambda v, _: v.cpu2("VIRTUAL_INTERRUPT_DELIVERY"),
    "GUEST_INTR_STATUS": lambda v, _: v.cpu2("VIRTUAL_INTERRUPT_DELIVERY"),
    "VMREAD_BITMAP": lambda v, _: v.cpu2("VMCS_SHADOWING"),
    "VMWRITE_BITMAP": lambda v, _: v.cpu2("VMCS_SHADOWING"),
    "VE_INFORMATION_ADDRESS": lambda v, _: v.cpu2("EPT_VIOLATION_VE"),
    "XSS_EXIT_BITMAP": lambda v, _: v.cpu2("ENABLE_XSAVES_XRSTORS"),
    "ENCLS_EXITING_BITMAP": lambda v, _: v.cpu2("ENABLE_ENCLS_EXITING"),
    "ENCLV_EXITING_BITMAP": lambda v, _: v.cpu2("ENABLE_ENCLV_EXITING"),
    "SPP_TABLE_POINTER": lambda v, _: v.cpu2("SUBPAGE_WRITE_PERMISSIONS"),
    "TERTIARY_VM_EXEC_CONTROL": lambda v, _: v.cpu("ACTIVATE_TERTIARY_CONTROLS"),
    "SECONDARY_VM_EXEC_CONTROL": lambda v, _: v.cpu("ACTIVATE_SECONDARY_CONTROLS"),
    "SECONDARY_VM_EXIT_CONTROLS": lambda v, _: v.exit("ACTIVATE_SECONDARY_CONTROLS"),
    "LOW_PASID_DIRECTORY_ADDRESS": lambda v, _: v.cpu2("PASID_TRANSLATION"),
    "HIGH_PASID_DIRECTORY_ADDRESS": lambda v, _: v.cpu2("PASID_TRANSLATION"),
    "SHARED_EPT_POINTER": _nonzero,
    "PCONFIG_EXITING_BITMAP": lambda v, _: v.cpu2("ENABLE_PCONFIG"),
    "SPEC_CTRL_MASK": lambda v, _: v.cpu3("VIRTUALIZE_IA32_SPEC_CTRL"),
    "SPEC_CTRL_SHADOW": lambda v, _: v.cpu3("VIRTUALIZE_IA32_SPEC_CTRL"),
    "INJECTED_EVENT_DATA": _fred,
    "PAGE_FAULT_ERROR_CODE_MASK": lambda v, _: bool(v.get("EXCEPTION_BITMAP") & 1 << 14),
    "PAGE_FAULT_ERROR_CODE_MATCH": lambda v, _: bool(v.get("EXCEPTION_BITMAP") & 1 << 14),
    "CR3_TARGET_VALUE0": _cr3_target(0),
    "CR3_TARGET_VALUE1": _cr3_target(1),
    "CR3_TARGET_VALUE2": _cr3_target(2),
    "CR3_TARGET_VALUE3": _cr3_target(3),
    "VM_ENTRY_EXCEPTION_ERROR_CODE": _intr_info_has_code("VM_ENTRY_INTR_INFO"),
    "VM_ENTRY_INSTRUCTION_LEN": lambda v, _: decode_interruption_info(v.get("VM_ENTRY_INTR_INFO")).valid,
    "PLE_GAP": lambda v, _: v.cpu2("PAUSE_LOOP_EXITING"),
    "PLE_WINDOW": lambda v, _: v.cpu2("PAUSE_LOOP_EXITING"),
    "NOTIFY_WINDOW": lambda v, _: v.cpu2("INSTRUCTION_TIMEOUT"),
    # exit information
    "VM_INSTRUCTION_ERROR": _nonzero,
    "VM_EXIT_INTR_ERROR_CODE": _intr_info_has_code("VM_EXIT_INTR_INFO"),
    "IDT_VECTORING_ERROR_CODE": _intr_info_has_code("IDT_VECTORING_INFO"),
    "GUEST_PHYSICAL_ADDRESS": lambda v, _: v.cpu2("ENABLE_EPT"),
    "ORIGINAL_EVENT_DATA": _fred,
    "IO_RCX": _nonzero,
    "IO_RSI": _nonzero,
    "IO_RDI": _nonzero,
    "IO_RIP": _nonzero,
    # guest state
    "GUEST_IA32_PAT": lambda v, _: v.entry("LOAD_IA32_PAT") or v.exit("SAVE_IA32_PAT"),
    "GUEST_IA32_EFER": lambda v, _: v.entry("LOAD_IA32_EFER") or v.exit("SAVE_IA32_EFER"),
    "GUEST_IA32_PERF_GLOBAL_CTRL": lambda v, _: v.entry("LOAD_IA32_PERF_GLOBAL_CTRL"),
    "GUEST_PDPTR0": _pae_paging,
    "GUEST_PDPTR1": _pae_paging,
    "GUEST_PDPTR2": _pae_paging,
    "GUEST_PDPTR3": _pae_paging,
    "GUEST_BNDCFGS": lambda v, _: v.entry("LOAD_IA32_BNDCFGS") or v.exit("CLEAR_IA32_BNDCFGS"),
    "GUEST_IA32_RTIT_CTL": lambda v, _: v.entry("LOAD_IA32_RTIT_CTL") or v.exit("CLEAR_IA32_RTIT_CTL"),
    "GUEST_IA32_LBR_CTL": lambda v, _: v.entry("LOAD_GUEST_IA32_LBR_CTL") or v.exit("CLEAR_IA32_LBR_CTL"),
    "GUEST_IA32_PKRS": lambda v, _: v.entry("LOAD_PKRS"),
    "GUEST_UINV": lambda v, _: v.entry("LOAD_UINV") or v.exit("CLEAR_UINV"),
    "GUEST_SMBASE": _nonzero,
    "VMX_PREEMPTION_TIMER_VALUE": lambda v, _: v.pin("ACTIVATE_PREEMPTION_TIMER"),
    "GUEST_S_CET": lambda v, _: v.entry("LOAD_CET_STATE"),
    "GUEST_SSP": lambda v, _: v.entry("LOAD_CET_STATE"),
    "GUEST_INTR_SSP_TABLE_ADDR": lambda v, _: v.entry("LOAD_CET_STATE"),
    # host state
    "HOST_IA32_PAT": lambda v, _: v.exit("LOAD_IA32_PAT"),
    "HOST_IA32_EFER": lambda v, _: v.exit("LOAD_IA32_EFER"),
    "HOST_IA32_PERF_GLOBAL_CTRL": lambda v, _: v.exit("LOAD_IA32_PERF_GLOBAL_CTRL"),
    "HOST_IA32_PKRS": lambda v, _: v.exit("LOAD_PKRS"),
    "HOST_S_CET": lambda v, _: v.exit("LOAD_CET_STATE"),
    "HOST_SSP": lambda v, _: v.exit("LOAD_CET_STATE"),
    "HOST_INTR_SSP_TABLE_ADDR": lambda v, _: v.exit("LOAD_CET_STATE"),
}
for _n in ("CONFIG", "RSP1", "RSP2", "RSP3", "STKLVLS", "SSP1", "SSP2", "SSP3"):
    _MEANINGFUL[f"GUEST_IA32_FRED_{_n}"] = _fred
    _MEANINGFUL[f"HOST_IA32_FRED_{_n}"] = lambda v, _: v.exit2("LOAD_IA32_FRED")


def is_meaningful(v: Vmcs, name: str, value: int) -> bool:
    """Whether the current controls make this field meaningful (unknown fields: when nonzero)."""
    rule = _MEANINGFUL.get(name)
    if rule is not None:
        return rule(v, value)
    if name.startswith("FIELD_") or name.endswith("_HIGH"):
        return value != 0
    return True


# ---- details ---------------------------------------------------------------------------------------


def _bits_detail(value: int, table: ctl.BitNames, default1: int = 0) -> list[str]:
    def label(b: int) -> str:
        if b in table:
            return table[b]
        return "(reserved, default 1)" if default1 >> b & 1 else "(reserved / unknown)"

    return [f"bit {b:2}  {label(b)}" for b in ctl.set_bits(value)]


def _flags_line(value: int, table: ctl.BitNames) -> list[str]:
    names = ctl.bit_names(value, table)
    return [" ".join(names)] if names else []


def _selector(value: int) -> list[str]:
    return [f"index={value >> 3} TI={'LDT' if value & 4 else 'GDT'} RPL={value & 3}"]


def details_for(v: Vmcs, name: str, value: int) -> list[str]:
    """Decoded lines for one field (empty when there is nothing to add to the value)."""
    if name in ctl.CONTROL_BITS:
        return _bits_detail(value, ctl.CONTROL_BITS[name], ctl.DEFAULT1.get(name, 0))
    if name == "EXCEPTION_BITMAP":
        names = ctl.exception_bitmap_names(value)
        return [("intercepts " + " ".join(names)) if names else "no exceptions intercepted"]
    if name.endswith("_AR_BYTES"):
        return [ctl.decode_access_rights(value).describe()]
    if name.endswith("_SELECTOR"):
        return _selector(value)
    if name in ("VM_ENTRY_INTR_INFO", "VM_EXIT_INTR_INFO", "IDT_VECTORING_INFO"):
        return [decode_interruption_info(value).describe()]
    if name == "VM_EXIT_REASON":
        er = decode_exit_reason(value)
        return [f"{er.describe()}: {EXIT_REASON_DESCRIPTIONS.get(er.basic, 'unknown reason')}"]
    if name == "EXIT_QUALIFICATION":
        return _qualification(v, value)
    if name == "VM_INSTRUCTION_ERROR":
        return [ctl.vm_instruction_error_name(value)] if value else []
    if name == "GUEST_INTERRUPTIBILITY_INFO":
        return _flags_line(value, ctl.INTERRUPTIBILITY)
    if name == "GUEST_ACTIVITY_STATE":
        return [ctl.activity_state_name(value)]
    if name == "GUEST_PENDING_DBG_EXCEPTIONS":
        return _flags_line(value, ctl.PENDING_DEBUG)
    if name in ("GUEST_CR0", "HOST_CR0", "CR0_READ_SHADOW", "CR0_GUEST_HOST_MASK"):
        return _flags_line(value, ctl.CR0_BITS)
    if name in ("GUEST_CR4", "HOST_CR4", "CR4_READ_SHADOW", "CR4_GUEST_HOST_MASK"):
        return _flags_line(value, ctl.CR4_BITS)
    if name in ("GUEST_IA32_EFER", "HOST_IA32_EFER"):
        return _flags_line(value, ctl.EFER_BITS)
    if name == "GUEST_RFLAGS":
        return [ctl.describe_rflags(value)]
    if name in ("GUEST_IA32_PAT", "HOST_IA32_PAT"):
        return [describe_pat(value)]
    if name == "EPT_POINTER":
        return [decode_eptp(value).describe()]
    return []


def _qualification(v: Vmcs, qual: int) -> list[str]:
    reason = v.get("VM_EXIT_REASON")
    instr_info = v.get("VMX_INSTRUCTION_INFO") if v.has("VMX_INSTRUCTION_INFO") else None
    text = describe_qualification(reason, qual, instr_info)
    if text is None and decode_exit_reason(reason).basic == 0 and not reason >> 31:
        info = decode_interruption_info(v.get("VM_EXIT_INTR_INFO"))
        text = describe_exception_qualification(info.vector, qual) if info.valid else None
    return [text] if text else []


# ---- rows and text ---------------------------------------------------------------------------------

_SEGS: Final = ("ES", "CS", "SS", "DS", "FS", "GS", "LDTR", "TR")
#: Registers, the execution controls and the exit reason first, in the order one reads them (as
#: dump_vmcs() does); then the rest of each area in SDM order.
_PREFERRED: Final = (
    *(f"GUEST_{r}" for r in ("CR0", "CR3", "CR4", "DR7", "RSP", "RIP", "RFLAGS")),
    *(f"GUEST_{s}_{p}" for s in _SEGS for p in ("SELECTOR", "BASE", "LIMIT", "AR_BYTES")),
    *(f"GUEST_{t}_{p}" for t in ("GDTR", "IDTR") for p in ("BASE", "LIMIT")),
    *(f"HOST_{r}" for r in ("CR0", "CR3", "CR4", "RSP", "RIP")),
    *(f"HOST_{s}_SELECTOR" for s in ("ES", "CS", "SS", "DS", "FS", "GS", "TR")),
    *(f"HOST_{b}_BASE" for b in ("FS", "GS", "TR", "GDTR", "IDTR")),
    "PIN_BASED_VM_EXEC_CONTROL",
    "CPU_BASED_VM_EXEC_CONTROL",
    "SECONDARY_VM_EXEC_CONTROL",
    "TERTIARY_VM_EXEC_CONTROL",
    "VM_EXIT_CONTROLS",
    "SECONDARY_VM_EXIT_CONTROLS",
    "VM_ENTRY_CONTROLS",
    "EXCEPTION_BITMAP",
    "VM_INSTRUCTION_ERROR",
    "VM_EXIT_REASON",
    "EXIT_QUALIFICATION",
    "GUEST_LINEAR_ADDRESS",
    "GUEST_PHYSICAL_ADDRESS",
    "VM_EXIT_INTR_INFO",
    "VM_EXIT_INTR_ERROR_CODE",
    "IDT_VECTORING_INFO",
    "IDT_VECTORING_ERROR_CODE",
    "VM_EXIT_INSTRUCTION_LEN",
    "VMX_INSTRUCTION_INFO",
)
_DISPLAY_ORDER: Final[Mapping[int, int]] = {
    **{enc: len(_PREFERRED) + i for enc, i in ORDER.items()},
    **{_BY_NAME[n]: i for i, n in enumerate(_PREFERRED)},
}


def wanted_areas(areas: Iterable[str] | None, what: str) -> set[str]:
    """The display areas asked for (all by default); ValueError naming any unknown one."""
    wanted = set(AREAS if areas is None else areas)
    unknown = wanted - set(AREAS)
    if unknown:
        raise ValueError(f"unknown {what} area(s): {', '.join(sorted(unknown))}")
    return wanted


def build_rows(
    fields: Iterable[tuple[int, int]] | Vmcs,
    *,
    areas: Iterable[str] | None = None,
    all_fields: bool = False,
    decode: bool = True,
) -> list[Row]:
    """Rows for the snapshot by area: registers first, then SDM order; unknown encodings last.

    ``areas``: a subset of :data:`AREAS` (default all). ``all_fields``: show every field, not only the
    meaningful ones. ``decode``: add the detail lines (``--raw`` turns them off).
    """
    v = fields if isinstance(fields, Vmcs) else Vmcs(fields)
    wanted = wanted_areas(areas, "VMCS")
    rows: list[Row] = []
    for enc, raw in v.values.items():
        bits = split_encoding(enc)
        area = _GROUP_AREA[bits.group]
        if area not in wanted:
            continue
        name = name_of(enc)
        f = FIELDS.get(enc)
        width = Width.W32 if bits.high else bits.width
        value = f.mask(raw) if f is not None else raw & ((1 << (4 * _HEX_DIGITS[width])) - 1)
        if not all_fields and not is_meaningful(v, name, value):
            continue
        rows.append(
            Row(
                area=area,
                encoding=enc,
                name=name,
                width=WIDTH_LABEL[width],
                value=value,
                hex_digits=_HEX_DIGITS[width],
                details=details_for(v, name, value) if decode else [],
            )
        )
    rows.sort(key=lambda r: (AREAS.index(r.area), _DISPLAY_ORDER.get(r.encoding, 1 << 20), r.encoding))
    return rows


_BOLD, _CYAN, _YELLOW, _DIM, _RESET = "\x1b[1m", "\x1b[36m", "\x1b[33m", "\x1b[2m", "\x1b[0m"


def render(rows: Iterable[Row], *, colourise: bool = False, name_width: int = 34) -> list[str]:
    """Plain text lines; ``colourise`` adds ANSI colours (headers bold, names cyan, values yellow)."""

    def paint(code: str, text: str) -> str:
        return f"{code}{text}{_RESET}" if colourise else text

    lines: list[str] = []
    area = None
    for r in rows:
        if r.area != area:
            area = r.area
            if lines:
                lines.append("")
            lines.append(paint(_BOLD, f"*** {AREA_TITLES[area]} ***"))
        value = f"0x{r.value:0{r.hex_digits}x}"
        lines.append(f"  {paint(_CYAN, r.name.ljust(name_width))} {r.width:>3}  {paint(_YELLOW, value)}")
        lines.extend(f"      {paint(_DIM, d)}" for d in r.details)
    return lines


def vmcs_view(
    fields: Iterable[tuple[int, int]] | Vmcs,
    *,
    areas: Iterable[str] | None = None,
    all_fields: bool = False,
    raw: bool = False,
    colourise: bool = False,
) -> list[str]:
    """The whole view as text lines: :func:`build_rows` then :func:`render`."""
    return render(build_rows(fields, areas=areas, all_fields=all_fields, decode=not raw), colourise=colourise)
