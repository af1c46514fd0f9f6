"""Python mirror of hv/include/hv/abi.h, the only contract between the hypervisor and the host tools.

tests/unit/test_abi_mirror.py preprocesses abi.h with the host compiler and checks that every
``#define HV_*`` there exists here with the same value, and vice versa. Change both together.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final

HV_ABI_VERSION: Final = 1

#: Most logical processors the hypervisor brings up.
HV_MAX_CPUS: Final = 64

#: Every run ends with exactly one line ``HVTRACE STATUS code=<n> result=<pass|fail> reason=<token>``.
HV_STATUS_PREFIX: Final = "HVTRACE STATUS"

#: QEMU isa-debug-exit port; QEMU's own exit status is then ``(code << 1) | 1``.
HV_DEBUG_EXIT_PORT: Final = 0xF4


class HvStatus(IntEnum):
    """Hypervisor status codes (``HV_STATUS_<NAME>`` in abi.h); 0 is success, failures are below 64."""

    PASS = 0
    FAIL = 1  # generic failure (a check failed)
    EXCEPTION = 2  # a CPU took an exception in the hypervisor
    AP_TIMEOUT = 3  # an application processor did not come online in time
    POOL_EXHAUSTED = 4  # the physical page pool ran out
    BAD_BOOTINFO = 5  # multiboot information missing or unusable
    NO_ACPI = 6  # no RSDP / RSDT / MADT found
    TOO_MANY_CPUS = 7  # the MADT lists more than HV_MAX_CPUS processors
    BAD_CMDLINE = 8  # unknown or malformed option on the kernel command line
    MAX = 63


class HvExitKind(IntEnum):
    """Vendor-neutral VM-exit kinds (``HV_EXIT_<NAME>``), recorded next to the native reason."""

    OTHER = 0
    CPUID = 1
    MSR_READ = 2
    MSR_WRITE = 3
    CR_ACCESS = 4
    VMCALL = 5  # VMCALL / VMMCALL
    INVD = 6  # INVD / WBINVD
    EXCEPTION = 7
    STAGE2_FAULT = 8  # EPT violation / #NPF
    IO = 9
    HLT = 10
    XSETBV = 11
    INIT = 12
    SIPI = 13
    TRIPLE_FAULT = 14
    ENTRY_FAILURE = 15
    VIRT_INSN = 16  # the guest tried a VMX / SVM instruction


HV_EXIT_KIND_COUNT: Final = 17


class HvHypercall(IntEnum):
    """Hypercall functions (``HV_HC_<NAME>``): RAX = function, RBX = argument, result in RAX."""

    PING = 0  # returns HV_HC_PING_REPLY
    EXIT_COUNT = 1  # RBX = exit kind: exits of that kind on this CPU so far


HV_HC_PING_REPLY: Final = 0x48565452  # "HVTR"
HV_HC_UNKNOWN: Final = 0xFFFF_FFFF_FFFF_FFFF  # (~0ull): unknown function

#: CPUID 0x40000000 returns the highest hypervisor leaf in EAX and this signature in EBX:ECX:EDX.
HV_CPUID_SIGNATURE: Final = "hvtrace\0\0\0\0\0"
HV_CPUID_MAX_LEAF: Final = 0x40000001  # 0x40000001: EAX = HV_ABI_VERSION


def status_name(code: int) -> str:
    """Name of a status code, or ``"UNKNOWN(<code>)"`` for codes abi.h does not define."""
    try:
        return HvStatus(code).name
    except ValueError:
        return f"UNKNOWN({code})"


def mirror_defines() -> dict[str, int | str]:
    """Every ``HV_*`` define of abi.h as this module mirrors it (name -> value)."""
    out: dict[str, int | str] = {
        "HV_ABI_VERSION": HV_ABI_VERSION,
        "HV_MAX_CPUS": HV_MAX_CPUS,
        "HV_STATUS_PREFIX": HV_STATUS_PREFIX,
        "HV_DEBUG_EXIT_PORT": HV_DEBUG_EXIT_PORT,
    }
    for member in HvStatus:
        out[f"HV_STATUS_{member.name}"] = int(member)
    for kind in HvExitKind:
        out[f"HV_EXIT_{kind.name}"] = int(kind)
    out["HV_EXIT_KIND_COUNT"] = HV_EXIT_KIND_COUNT
    for hc in HvHypercall:
        out[f"HV_HC_{hc.name}"] = int(hc)
    out["HV_HC_PING_REPLY"] = HV_HC_PING_REPLY
    out["HV_HC_UNKNOWN"] = HV_HC_UNKNOWN
    out["HV_CPUID_SIGNATURE"] = HV_CPUID_SIGNATURE
    out["HV_CPUID_MAX_LEAF"] = HV_CPUID_MAX_LEAF
    return out
