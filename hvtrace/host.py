"""Facts about the host: KVM and nested virtualization (used by `run --accel kvm` and `doctor`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

KVM_DEV = Path("/dev/kvm")
SYS_MODULE = Path("/sys/module")


def _read_flag(path: Path) -> bool | None:
    """A kvm module parameter as bool ('Y'/'1' -> True), or None when the module is not loaded."""
    try:
        value = path.read_text().strip()
    except OSError:
        return None
    return value in ("Y", "y", "1")


def cpu_flags() -> set[str]:
    """The host CPU's feature flags from /proc/cpuinfo (first processor)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


@dataclass(frozen=True)
class KvmInfo:
    dev_exists: bool
    dev_accessible: bool
    intel_nested: bool | None  # kvm_intel 'nested' parameter; None = module not loaded
    amd_nested: bool | None  # kvm_amd 'nested' parameter; None = module not loaded
    host_vmx: bool
    host_svm: bool

    @property
    def nested_vmx(self) -> bool:
        """KVM can give a guest VT-x: kvm_intel nested=Y on a VMX host."""
        return bool(self.intel_nested) and self.host_vmx

    @property
    def nested_svm(self) -> bool:
        """KVM can give a guest AMD-V: kvm_amd nested=1 on an SVM host."""
        return bool(self.amd_nested) and self.host_svm

    def refusal(self) -> str | None:
        """Why `--accel kvm` cannot run the hypervisor here, or None when it can."""
        if not self.dev_exists:
            return "/dev/kvm does not exist (no KVM on this host); use --accel tcg"
        if not self.dev_accessible:
            return "/dev/kvm is not readable and writable by this user (add yourself to group kvm)"
        if self.nested_vmx or self.nested_svm:
            return None
        parts = []
        if self.intel_nested is None and self.amd_nested is None:
            parts.append("neither kvm_intel nor kvm_amd is loaded")
        if self.intel_nested is False:
            parts.append("kvm_intel nested=N (/sys/module/kvm_intel/parameters/nested)")
        if self.amd_nested is False:
            parts.append("kvm_amd nested=0 (/sys/module/kvm_amd/parameters/nested)")
        if not (self.host_vmx or self.host_svm):
            parts.append("the host CPU exposes neither vmx nor svm")
        return (
            "KVM does not expose nested VT-x or SVM here (" + "; ".join(parts) + "): "
            "the hypervisor needs virtualization extensions inside the VM; use --accel tcg"
        )


def kvm_info() -> KvmInfo:
    flags = cpu_flags()
    return KvmInfo(
        dev_exists=KVM_DEV.exists(),
        dev_accessible=KVM_DEV.exists() and os.access(KVM_DEV, os.R_OK | os.W_OK),
        intel_nested=_read_flag(SYS_MODULE / "kvm_intel" / "parameters" / "nested"),
        amd_nested=_read_flag(SYS_MODULE / "kvm_amd" / "parameters" / "nested"),
        host_vmx="vmx" in flags,
        host_svm="svm" in flags,
    )
