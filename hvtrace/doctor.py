"""`hvtrace doctor`: what this host can run, and exactly what to install for the rest."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from hvtrace.exitcodes import ExitCode
from hvtrace.host import kvm_info
from hvtrace.tools import BOCHS_BIOS, GRUB_I386_PC, TOOL_PACKAGES, VGA_BIOS, run_tool

BOCHS_CPU_MODEL = "corei7_skylake_x"


def _run(argv: list[str], timeout: float = 20.0) -> tuple[int, str]:
    """Run a probe command; (returncode, stdout+stderr). (-1, reason) when it cannot run."""
    try:
        proc = run_tool(argv, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        return -1, str(e)
    return proc.returncode, proc.stdout


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    missing_packages: dict[str, list[str]] = field(default_factory=dict)  # backend -> packages

    def ok(self, what: str, detail: str) -> None:
        self.lines.append(f"  [ok]   {what}: {detail}")

    def bad(self, what: str, detail: str) -> None:
        self.lines.append(f"  [--]   {what}: {detail}")

    def note(self, what: str, detail: str) -> None:
        self.lines.append(f"  [..]   {what}: {detail}")

    def need(self, backend: str, package: str) -> None:
        pkgs = self.missing_packages.setdefault(backend, [])
        if package not in pkgs:
            pkgs.append(package)


def check_qemu(r: Report) -> bool:
    r.lines.append("QEMU (AMD SVM back end under TCG; KVM with nested virtualization)")
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        r.bad("qemu-system-x86_64", "not found")
        r.need("qemu", "qemu-system-x86")
        return False
    _, out = _run([qemu, "--version"])
    r.ok("qemu-system-x86_64", _first_line(out))
    _, accel = _run([qemu, "-accel", "help"])
    accels = [a.strip() for a in accel.splitlines()[1:] if a.strip()]
    r.ok("accelerators", ", ".join(accels) or "(none listed)")
    usable = "tcg" in accels
    if not usable:
        r.bad("tcg", "this QEMU has no TCG accelerator")
    return usable


def check_kvm(r: Report) -> bool:
    info = kvm_info()
    r.lines.append("KVM (for `run --accel kvm`)")
    if not info.dev_exists:
        r.bad("/dev/kvm", "missing")
    else:
        r.ok("/dev/kvm", "present" + ("" if info.dev_accessible else " but not readable/writable by you"))
    r.note("host CPU flags", f"vmx={'yes' if info.host_vmx else 'no'} svm={'yes' if info.host_svm else 'no'}")
    for mod, val in (("kvm_intel", info.intel_nested), ("kvm_amd", info.amd_nested)):
        shown = "module not loaded" if val is None else f"nested={'on' if val else 'off'}"
        r.note(mod, shown)
    refusal = info.refusal()
    if refusal is None:
        vendor = "VT-x" if info.nested_vmx else "SVM"
        r.ok("nested virtualization", f"KVM exposes nested {vendor}: --accel kvm usable")
        return True
    r.bad("--accel kvm", refusal)
    return False


def check_bochs(r: Report) -> bool:
    r.lines.append("Bochs (Intel VT-x back end)")
    usable = True
    bochs = shutil.which("bochs")
    if bochs is None:
        r.bad("bochs", "not found")
        r.need("bochs", "bochs")
        usable = False
    else:
        _, out = _run([bochs, "--help", "cpu"])
        version = next((m.group(0) for m in [re.search(r"Bochs x86 Emulator [\d.]+", out)] if m), "version ?")
        r.ok("bochs", version)
        if BOCHS_CPU_MODEL in out:
            r.ok("cpu model", f"{BOCHS_CPU_MODEL} available (VMX + EPT model)")
        else:
            r.bad("cpu model", f"{BOCHS_CPU_MODEL} not offered by this Bochs build")
            usable = False
        binary = shutil.which("bochs-bin") or bochs
        try:
            data = Path(binary).read_bytes()
        except OSError:
            data = b""
        if b"VMLAUNCH" in data and b"VMRESUME" in data:
            r.ok("VMX support", f"{binary} implements VMLAUNCH/VMRESUME (built with VMX)")
        else:
            r.bad("VMX support", f"no VMX instructions found in {binary}")
            usable = False
    for path, pkg in ((BOCHS_BIOS, "bochsbios"), (VGA_BIOS, "vgabios")):
        if path.exists():
            r.ok(path.name, str(path))
        else:
            r.bad(path.name, f"missing ({path})")
            r.need("bochs", pkg)
            usable = False
    for tool in ("grub-mkrescue", "xorriso", "mformat"):
        tool_path = shutil.which(tool)
        if tool_path is None:
            r.bad(tool, "not found (needed to build the GRUB ISO)")
            r.need("bochs", TOOL_PACKAGES[tool])
            usable = False
        else:
            flag = "-version" if tool == "xorriso" else "--version"
            r.ok(tool, _first_line(_run([tool_path, flag])[1]))
    if GRUB_I386_PC.is_dir():
        r.ok("grub i386-pc", str(GRUB_I386_PC))
    else:
        r.bad("grub i386-pc", f"missing ({GRUB_I386_PC})")
        r.need("bochs", "grub-pc-bin")
        usable = False
    return usable


def check_gdb(r: Report) -> None:
    r.lines.append("gdb (hvtrace gdb: the hv-* commands on QEMU's gdbstub or a core)")
    gdb = shutil.which("gdb")
    if gdb is None:
        r.bad("gdb", "not found (apt-get install gdb)")
        return
    r.ok("gdb", _first_line(_run([gdb, "--version"])[1]))
    rc, out = _run([gdb, "-nx", "-batch", "-ex", "python import sys; print(sys.version)"])
    if rc == 0 and out.strip():
        r.ok("gdb's Python", _first_line(out))
    else:
        r.bad("gdb's Python", "gdb has no embedded Python")


def check_toolchain(r: Report) -> bool:
    r.lines.append("Toolchain (to build hv/)")
    usable = True
    for tool in ("gcc", "make", "as", "ld", "nasm"):
        path = shutil.which(tool)
        if path is None:
            r.bad(tool, f"not found (apt-get install {TOOL_PACKAGES[tool]})")
            r.need("build", TOOL_PACKAGES[tool])
            usable = usable and tool == "nasm"  # nasm is optional today: hv/ uses gcc's assembler
        else:
            flag = "-v" if tool == "nasm" else "--version"
            r.ok(tool, _first_line(_run([path, flag])[1]))
    return usable


def run_doctor() -> int:
    r = Report()
    qemu_ok = check_qemu(r)
    kvm_ok = check_kvm(r)
    bochs_ok = check_bochs(r)
    check_gdb(r)
    build_ok = check_toolchain(r)
    print("\n".join(r.lines))
    print()
    backends = {"qemu": qemu_ok and build_ok, "bochs": bochs_ok and build_ok}
    for name, ok in backends.items():
        if ok:
            print(f"backend {name}: usable (hvtrace run --backend {name})")
        else:
            pkgs = r.missing_packages.get(name, []) + r.missing_packages.get("build", [])
            how = f"install with: apt-get install {' '.join(pkgs)}" if pkgs else "see the [--] lines above"
            print(f"backend {name}: NOT usable; {how}")
    if qemu_ok:
        print(f"qemu --accel kvm: {'usable' if kvm_ok else 'NOT usable here (see the KVM lines above)'}")
    return 0 if any(backends.values()) else ExitCode.TOOL_MISSING
