"""One object per back end: what differs between VT-x and AMD-V, the twin of the C ``struct hv_backend``
(hv/include/hv/backend.h). Everything outside this module asks the object; nothing else compares
``HvVendor.VMX`` / ``HvVendor.SVM``.

- Native exit reasons as records carry them (16 bits): SDM Vol. 3D Appendix C Table C-1 (VMX basic
  reasons, hvtrace.decode.vmx_exits) and APM Vol. 2 Appendix C Table C-1 (SVM EXITCODEs, records keep
  the low 16 bits so VMEXIT_INVALID (-1) is 0xffff: hvtrace.decode.svm_exits).
- The record's qualification: the exit qualification (SDM Vol. 3C 28.2.1) or EXITINFO1 with the
  record's gpa as EXITINFO2 (APM Vol. 2 15.7).
- The snapshot: VMCS fields by encoding (hvtrace.decode.vmcs_fields) or VMCB qwords by byte offset
  (hvtrace.decode.svm_vmcb), and their views.
- Stage 2: EPT (SDM Vol. 3C 29.3) or nested page tables (APM Vol. 2 15.25).

Stdlib only (gdb's Python imports it). The reason tables load with this module; the qualification
decoders, the snapshot layouts and their views (most of hvtrace.decode's import time) load when first
used: `hvtrace report` names reasons and needs none of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Final

from hvtrace.abi import HvVendor
from hvtrace.decode import svm_exits, vmx_exits

Fields = Iterable[tuple[int, int]]

#: Guest registers every back end's snapshot answers by these names (guest_register()).
GUEST_REGISTERS: Final = ("RIP", "RSP", "RFLAGS", "CR0", "CR3", "CR4", "EFER", "CS_BASE", "RAX")


class Vendor:
    """A back end as the host tools see it. This base is "no back end yet" (hv_trace.vendor 0) or an
    unknown number: no native reasons, no qualification decoding, no snapshot layout, no stage 2."""

    snapshot_name = "(no back end)"
    #: "ept" / "npt" (hv-ept's table kind), None without a back end.
    stage2_name: str | None = None
    #: What a STAGE2_FAULT record's arg0 holds (the back ends' record_operands()).
    stage2_arg0 = "arg0"
    #: Record reason (16 bits) -> native name.
    reasons: ClassVar[Mapping[int, str]] = {}

    def __init__(self, number: int) -> None:
        self.number = number  # abi.h HV_VENDOR_* (the C struct's ``vendor``)
        try:
            self.name = HvVendor(number).name
        except ValueError:
            self.name = f"VENDOR_{number}"

    def __repr__(self) -> str:
        return f"<vendor {self.name}>"

    # ---- exit reasons ------------------------------------------------------------------------------

    def reason_name(self, reason: int) -> str:
        """Native name of a record's reason, ``UNKNOWN`` where the manual's table has none."""
        return f"REASON_{reason:#x}"

    def reason_code(self, name: str) -> int | None:
        """Native reason by name (case-insensitive), or None."""
        wanted = name.upper()
        return next((code for code, n in self.reasons.items() if n == wanted), None)

    def reason_words(self) -> list[str]:
        """Known native reason names, lower case and sorted (what hv-break accepts besides kinds)."""
        return sorted({n.lower() for n in self.reasons.values() if n != "UNKNOWN"})

    def _qualification(self, reason: int, qual: int, gpa: int) -> str | None:
        return None

    def qualification(self, reason: int, qual: int, gpa: int) -> str:
        """A record's qualification decoded for its native reason ("" when the reason has no layout);
        a value the decoder cannot take is shown raw."""
        try:
            return self._qualification(reason, qual, gpa) or ""
        except (ValueError, KeyError, IndexError):
            return f"qual {qual:#x}"

    # ---- snapshots ---------------------------------------------------------------------------------

    def snapshot_value(self, fields: Fields, name: str) -> int | None:
        """A snapshot field by its native name (VMCS ``GUEST_RIP``, VMCB ``RIP``); None if not taken."""
        return None

    def guest_register(self, fields: Fields, reg: str) -> int | None:
        """A guest register by a name of GUEST_REGISTERS, whatever the back end calls it."""
        native = self.register_names.get(reg)
        return None if native is None else self.snapshot_value(fields, native)

    register_names: ClassVar[Mapping[str, str]] = {}

    def snapshot_view(self, fields: Fields, **options: Any) -> list[str]:
        """The snapshot as decoded text (hv-vmcs); options as vmcs_view / vmcb_view take them."""
        raise ValueError(f"names no back end (vendor {self.number})")


class Vmx(Vendor):
    """Intel VT-x (hv/vmx)."""

    snapshot_name = "VMCS"
    stage2_name = "ept"
    stage2_arg0 = "linear"  # GUEST_LINEAR_ADDRESS (SDM Vol. 3C 28.2.1 Table 28-7: valid when bit 7 is set)
    reasons: ClassVar[Mapping[int, str]] = vmx_exits.EXIT_REASONS
    register_names: ClassVar[Mapping[str, str]] = {
        "RIP": "GUEST_RIP",
        "RSP": "GUEST_RSP",
        "RFLAGS": "GUEST_RFLAGS",
        "CR0": "GUEST_CR0",
        "CR3": "GUEST_CR3",
        "CR4": "GUEST_CR4",
        "EFER": "GUEST_IA32_EFER",
        "CS_BASE": "GUEST_CS_BASE",
    }  # guest RAX is not in the VMCS: it is in the exit frame (snapshot gpr[])

    def reason_name(self, reason: int) -> str:
        return vmx_exits.exit_reason_name(reason & 0xFFFF)  # bits 15:0, the basic reason (25.9.1)

    # The decoders below are imported when first used (see the module's doc); a module is imported once.

    def _qualification(self, reason: int, qual: int, gpa: int) -> str | None:
        from hvtrace.decode import vmx_qualifications  # noqa: PLC0415

        return vmx_qualifications.describe_qualification(reason, qual)

    def snapshot_value(self, fields: Fields, name: str) -> int | None:
        from hvtrace.decode import vmcs_fields  # noqa: PLC0415

        enc = vmcs_fields.encoding_of(name)
        return next((v for e, v in fields if e == enc), None)

    def snapshot_view(self, fields: Fields, **options: Any) -> list[str]:
        from hvtrace.decode import vmcs_view  # noqa: PLC0415

        return vmcs_view.vmcs_view(list(fields), **options)


class Svm(Vendor):
    """AMD-V (hv/svm)."""

    snapshot_name = "VMCB"
    stage2_name = "npt"
    stage2_arg0 = "error"  # EXITINFO1 of #NPF: a page-fault error code (APM Vol. 2 15.25.6)
    reasons: ClassVar[Mapping[int, str]] = {
        code & 0xFFFF: name for code, name in svm_exits.EXIT_CODES.items()
    }
    register_names: ClassVar[Mapping[str, str]] = {
        r: r for r in GUEST_REGISTERS
    }  # the VMCB save area also holds RAX (Table B-2)

    def reason_name(self, reason: int) -> str:
        return self.reasons.get(reason & 0xFFFF, "UNKNOWN")

    def _qualification(self, reason: int, qual: int, gpa: int) -> str | None:
        code = svm_exits.exit_code_from_record(reason)
        return "; ".join(svm_exits.describe_exitinfo(code, qual, gpa))

    def snapshot_value(self, fields: Fields, name: str) -> int | None:
        from hvtrace.decode import svm_vmcb  # noqa: PLC0415  (when first used: the module's doc)

        off = svm_vmcb.offset_of(name)
        vmcb = svm_vmcb.Vmcb.from_pairs(fields)
        return vmcb.get(name) if off // 8 * 8 in vmcb.present else None

    def snapshot_view(self, fields: Fields, **options: Any) -> list[str]:
        from hvtrace.decode import vmcb_view  # noqa: PLC0415

        return vmcb_view.vmcb_view(list(fields), **options)


class Unknown(Vendor):
    """No back end chosen (or one these tools do not know): hv-break still takes either side's names."""

    def reason_words(self) -> list[str]:
        return sorted({*VMX.reason_words(), *SVM.reason_words()})


VMX: Final = Vmx(HvVendor.VMX)
SVM: Final = Svm(HvVendor.SVM)
BY_NUMBER: Final[Mapping[int, Vendor]] = {HvVendor.VMX: VMX, HvVendor.SVM: SVM}


def vendor_of(number: int) -> Vendor:
    """The back end of hv_trace.vendor / a snapshot's vendor / a trace file's ``vendor``."""
    return BY_NUMBER.get(number) or Unknown(number)


def reason_name(vendor: int, reason: int) -> str:
    """Native reason name for a record's ``reason`` under ``vendor`` (HV_VENDOR_*)."""
    return vendor_of(vendor).reason_name(reason)


def reason_names(vendor: int) -> dict[int, str]:
    """Every known native reason of ``vendor`` (record reason -> name)."""
    return dict(vendor_of(vendor).reasons)


def reason_code(vendor: int, name: str) -> int | None:
    """Native reason code by name (case-insensitive), or None."""
    return vendor_of(vendor).reason_code(name)
