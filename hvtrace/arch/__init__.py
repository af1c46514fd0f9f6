"""Architecture decoders: native VM-exit reason names of the VT-x (vmx) and AMD-V (svm) back ends."""

from __future__ import annotations

from hvtrace.abi import HvVendor
from hvtrace.arch import svm, vmx


def reason_name(vendor: int, reason: int) -> str:
    """Native reason name for a record's ``reason`` under ``vendor`` (HV_VENDOR_*)."""
    if vendor == HvVendor.VMX:
        return vmx.exit_reason_name(reason)
    if vendor == HvVendor.SVM:
        return svm.exit_code_name(reason)
    return f"REASON_{reason:#x}"


def reason_names(vendor: int) -> dict[int, str]:
    """Every known native reason of ``vendor`` (code -> name)."""
    if vendor == HvVendor.VMX:
        return dict(vmx.EXIT_REASONS)
    if vendor == HvVendor.SVM:
        return dict(svm.EXIT_CODES)
    return {}


def reason_code(vendor: int, name: str) -> int | None:
    """Native reason code by name (case-insensitive), or None."""
    wanted = name.upper()
    for code, n in reason_names(vendor).items():
        if n == wanted:
            return code
    return None
