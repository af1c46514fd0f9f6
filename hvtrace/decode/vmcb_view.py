"""A VMCB snapshot as grouped, decoded text lines (the layout ``hv-vmcs`` prints on AMD-V).

The rows and rendering are vmcs_view's (areas, Row, render); the VMCB fields come from svm_vmcb, their
decoding from svm_controls and svm_exits (AMD64 APM Vol. 2 Appendix B; 15.15.3 clean bits; 15.16.1 TLB
control).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Final

from hvtrace.decode.stage2 import describe_pat
from hvtrace.decode.svm_controls import (
    CLEAN_BITS,
    CR_BITS16,
    DR_BITS16,
    INTERCEPT_MISC1,
    INTERCEPT_MISC2,
    INTERCEPT_MISC3,
    INTERRUPT_SHADOW_BITS,
    NP_CONTROL_BITS,
    TLB_CONTROL_NAMES,
    VINTR_BITS,
    VIRT_EXT_BITS,
)
from hvtrace.decode.svm_exits import decode_event, describe_exitinfo, exit_code_name
from hvtrace.decode.svm_vmcb import FIELDS, Vmcb
from hvtrace.decode.vmcs_view import AREAS, Row, render, wanted_areas
from hvtrace.decode.vmx_controls import (
    CR0_BITS,
    CR4_BITS,
    EFER_BITS,
    BitNames,
    bit_names,
    describe_rflags,
    exception_bitmap_names,
    set_bits,
)

# ---- view ------------------------------------------------------------------------------------------

Rule = Callable[[Vmcb], bool]


def _misc1(v: Vmcb, name: str) -> bool:
    return bool(v.get("INTERCEPT_MISC1") >> _bit(INTERCEPT_MISC1, name) & 1)


def _bit(table: BitNames, name: str) -> int:
    return next(b for b, n in table.items() if n == name)


def _np(v: Vmcb) -> bool:
    return bool(v.get("NP_CONTROL") & 1)


def _sev_es(v: Vmcb) -> bool:
    return bool(v.get("NP_CONTROL") & 4)


def _avic(v: Vmcb) -> bool:
    return bool(v.get("VINTR") >> 31 & 1)


def _lbr(v: Vmcb) -> bool:
    return bool(v.get("VIRT_EXT") & 1)


def _nonzero(name: str) -> Rule:
    return lambda v: v.get(name) != 0


_MEANINGFUL: Final[dict[str, Rule]] = {
    "PAUSE_FILTER_THRESHOLD": lambda v: _misc1(v, "PAUSE"),
    "PAUSE_FILTER_COUNT": lambda v: _misc1(v, "PAUSE"),
    "IOPM_BASE_PA": lambda v: _misc1(v, "IOIO_PROT"),
    "MSRPM_BASE_PA": lambda v: _misc1(v, "MSR_PROT"),
    "N_CR3": _np,
    "G_PAT": _np,
    "AVIC_APIC_BAR": _avic,
    "AVIC_BACKING_PAGE": _avic,
    "AVIC_LOGICAL_TABLE": _avic,
    "AVIC_PHYSICAL_TABLE": _avic,
    "GHCB_PA": _sev_es,
    "VMSA_PA": _sev_es,
    "VMGEXIT_RAX": _sev_es,
    "VMGEXIT_CPL": _sev_es,
    "BR_FROM": _lbr,
    "BR_TO": _lbr,
    "LASTEXCPFROM": _lbr,
    "LASTEXCPTO": _lbr,
    "INSN_LEN": _nonzero("INSN_LEN"),
    "INSN_BYTES": _nonzero("INSN_LEN"),
    "INTERCEPT_MISC3": _nonzero("INTERCEPT_MISC3"),
    "VMPL": _nonzero("VMPL"),
    "S_CET": _nonzero("S_CET"),
    "SSP": _nonzero("SSP"),
    "ISST_ADDR": _nonzero("ISST_ADDR"),
    "SPEC_CTRL": _nonzero("SPEC_CTRL"),
}


def _attrib(value: int) -> str:
    """Segment attributes: descriptor bits 47:40 in 7:0 and 55:52 in 11:8 (Table B-2)."""
    typ, s, dpl, p = value & 0xF, value >> 4 & 1, value >> 5 & 3, value >> 7 & 1
    avl, lng, db, g = value >> 8 & 1, value >> 9 & 1, value >> 10 & 1, value >> 11 & 1
    return f"type={typ:#x} S={s} DPL={dpl} P={p} AVL={avl} L={lng} D/B={db} G={g}"


def _vintr(value: int) -> list[str]:
    flags = bit_names(value & 0xFFFF_FFFF & ~0x000F_00FF, VINTR_BITS)
    text = f"V_TPR={value & 0xFF:#x} V_INTR_PRIO={value >> 16 & 0xF} V_INTR_VECTOR={value >> 32 & 0xFF:#x}"
    return [" ".join([text, *flags])]


def _flags(value: int, table: BitNames) -> list[str]:
    names = bit_names(value, table)
    return [" ".join(names)] if names else []


def details_for(v: Vmcb, name: str, value: int) -> list[str]:
    if name in ("INTERCEPT_CR_READ", "INTERCEPT_CR_WRITE"):
        return _flags(value, CR_BITS16)
    if name in ("INTERCEPT_DR_READ", "INTERCEPT_DR_WRITE"):
        return _flags(value, DR_BITS16)
    if name == "INTERCEPT_EXCEPTIONS":
        names = exception_bitmap_names(value)
        return [" ".join(names)] if names else []
    tables: Mapping[str, BitNames] = {
        "INTERCEPT_MISC1": INTERCEPT_MISC1,
        "INTERCEPT_MISC2": INTERCEPT_MISC2,
        "INTERCEPT_MISC3": INTERCEPT_MISC3,
        "NP_CONTROL": NP_CONTROL_BITS,
        "VIRT_EXT": VIRT_EXT_BITS,
        "INTERRUPT_SHADOW": INTERRUPT_SHADOW_BITS,
    }
    if name in tables:
        return [f"bit {b:2}  {tables[name].get(b, '(reserved / unknown)')}" for b in set_bits(value)]
    if name == "VMCB_CLEAN":
        return [f"clean: {CLEAN_BITS.get(b, f'bit{b}')}" for b in set_bits(value)]
    if name == "TLB_CONTROL":
        return [TLB_CONTROL_NAMES.get(value, "reserved")]
    if name == "VINTR":
        return _vintr(value)
    if name == "EXITCODE":
        return [exit_code_name(value)]
    if name == "EXITINFO1":
        return describe_exitinfo(v.get("EXITCODE"), value, v.get("EXITINFO2"))
    if name in ("EVENTINJ", "EXITINTINFO"):
        return [decode_event(value).describe()]
    if name == "INSN_BYTES":
        return [v.bytes_of("INSN_BYTES")[: v.get("INSN_LEN")].hex(" ")]
    if name.endswith("_ATTRIB"):
        return [_attrib(value)]
    if name == "CR0":
        return _flags(value, CR0_BITS)
    if name == "CR4":
        return _flags(value, CR4_BITS)
    if name == "EFER":
        return _flags(value, EFER_BITS)
    if name == "RFLAGS":
        return [describe_rflags(value)]
    if name == "G_PAT":
        return [describe_pat(value)]
    return []


def build_rows(
    source: Vmcb | bytes | bytearray | Iterable[tuple[int, int]],
    *,
    areas: Iterable[str] | None = None,
    all_fields: bool = False,
    decode: bool = True,
) -> list[Row]:
    """Rows like vmcs_view.build_rows(): areas "controls", "exit", "guest" ("host" is empty: the VMCB
    holds no host state). The row's ``encoding`` is the byte offset."""
    v = source if isinstance(source, Vmcb) else _as_vmcb(source)
    wanted = wanted_areas(areas, "VMCB")
    rows: list[Row] = []
    for f in FIELDS:
        if f.area not in wanted or not v.covered(f):
            continue
        if not all_fields:
            rule = _MEANINGFUL.get(f.name)
            if rule is not None and not rule(v):
                continue
        # Instruction bytes read in memory order; everything else is a little-endian number.
        value = int.from_bytes(v.bytes_of(f.name), "big") if f.size > 8 else v.read(f.offset, f.size)
        rows.append(
            Row(
                area=f.area,
                encoding=f.offset,
                name=f.name,
                width=f"+{f.offset:03x}",
                value=value,
                hex_digits=2 * f.size,
                details=details_for(v, f.name, value) if decode else [],
            )
        )
    rows.sort(key=lambda r: (AREAS.index(r.area), r.encoding))
    return rows


def _as_vmcb(source: bytes | bytearray | Iterable[tuple[int, int]]) -> Vmcb:
    if isinstance(source, bytes | bytearray):
        return Vmcb(source)
    return Vmcb.from_pairs(source)


def vmcb_view(
    source: Vmcb | bytes | bytearray | Iterable[tuple[int, int]],
    *,
    areas: Iterable[str] | None = None,
    all_fields: bool = False,
    raw: bool = False,
    colourise: bool = False,
) -> list[str]:
    """The VMCB as text lines (the width column shows each field's offset, e.g. ``+578``)."""
    rows = build_rows(source, areas=areas, all_fields=all_fields, decode=not raw)
    return render(rows, colourise=colourise)
