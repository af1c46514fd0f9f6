"""Native exit-reason decoders checked against the manuals, and against the hypervisor's own table."""

from __future__ import annotations

import re
from pathlib import Path

from hvtrace.abi import HvVendor
from hvtrace.decode.vendor import SVM, VMX, reason_code, reason_name

NAMES_C = Path(__file__).resolve().parents[2] / "hv" / "vmx" / "names.c"


def test_vmx_basic_exit_reasons_match_sdm_vol3d_appendix_c() -> None:
    # Intel SDM Vol. 3D, Appendix C, Table C-1 "Basic Exit Reasons".
    sdm = {0: "EXCEPTION_NMI", 1: "EXTERNAL_INTERRUPT", 2: "TRIPLE_FAULT", 10: "CPUID", 12: "HLT",
           18: "VMCALL", 28: "CR_ACCESS", 30: "IO_INSTRUCTION", 31: "MSR_READ", 32: "MSR_WRITE",
           33: "INVALID_GUEST_STATE",
           48: "EPT_VIOLATION", 49: "EPT_MISCONFIG", 54: "WBINVD", 55: "XSETBV", 75: "NOTIFY"}  # fmt: skip
    for code, name in sdm.items():
        assert VMX.reason_name(code) == name
    assert VMX.reason_name(35) == "UNKNOWN"  # reserved in Table C-1
    assert VMX.reason_name(0x8000_0021) == "INVALID_GUEST_STATE"  # entry failure bit + basic 33


def test_vmx_table_mirrors_the_hypervisor_names_c() -> None:
    body = NAMES_C.read_text().split("exit_reasons[VMX_EXIT_REASON_COUNT]")[1].split("};")[0]
    c_table = {int(n): s for n, s in re.findall(r'\[(\d+)\]\s*=\s*"(\w+)"', body)}
    assert c_table == VMX.reasons


def test_svm_exit_codes_match_amd_apm_vol2_appendix_c() -> None:
    # AMD64 APM Vol. 2, Appendix C, Table C-1 "SVM Intercept Codes".
    apm = {0x00: "CR0_READ", 0x13: "CR3_WRITE", 0x40: "EXCP_DE", 0x4E: "EXCP_PF", 0x60: "INTR", 0x72: "CPUID",
           0x78: "HLT", 0x7B: "IOIO", 0x7C: "MSR", 0x7F: "SHUTDOWN", 0x80: "VMRUN", 0x81: "VMMCALL",
           0x89: "WBINVD", 0x8D: "XSETBV", 0x8F: "EFER_WRITE_TRAP", 0x90: "CR0_WRITE_TRAP", 0x400: "NPF",
           0x403: "VMGEXIT", 0xFFFF: "VMEXIT_INVALID", 0xFFFE: "VMEXIT_BUSY"}  # fmt: skip
    for code, name in apm.items():
        assert SVM.reason_name(code) == name, hex(code)
    assert SVM.reason_name(0x3FF) == "UNKNOWN"


def test_vendor_dispatch_and_reverse_lookup() -> None:
    assert reason_name(HvVendor.VMX, 10) == "CPUID"
    assert reason_name(HvVendor.SVM, 0x72) == "CPUID"
    assert reason_name(HvVendor.NONE, 5) == "REASON_0x5"
    assert reason_code(HvVendor.SVM, "npf") == 0x400
    assert reason_code(HvVendor.VMX, "EPT_VIOLATION") == 48
