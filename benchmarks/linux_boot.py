"""Linux boot-to-marker time under the hypervisor vs bare, per back end, measured side by side.

Debian's kernel + the busybox initramfs; the time runs from the emulator's start to /init's marker
line on the serial console. Bare QEMU TCG boots the kernel with -kernel (hvtrace.guest_assets); the
hypervisor case is `hvtrace run --guest` (SVM under QEMU TCG; VT-x under Bochs). Bare Bochs boots the
same kernel from a GRUB ISO (`linux` + `initrd`) with the bochsrc hvtrace uses for guest runs.

    python benchmarks/linux_boot.py                 # QEMU, 1 and 2 CPUs, median of 3
    python benchmarks/linux_boot.py --bochs         # also Bochs, 1 CPU, one run each (slow: minutes)
    python benchmarks/linux_boot.py --cpus 2        # QEMU with 2 CPUs only

Besides the wall time, the host CPU time the emulator used (its user + system seconds, from the
children's rusage): a parked AP that spins shows there as a second busy host thread, whatever the
shared machine's load does to the wall time. No asserts: numbers for the notes.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from hvtrace import guest_assets as ga
from hvtrace import tools
from hvtrace.launch import BochsSession, QemuSession
from hvtrace.launch.bochs import bochsrc_text
from hvtrace.launch.guest import GuestSpec
from hvtrace.launch.procs import spawn, stop

MEMORY_MB = 512
APPEND = "console=ttyS0,115200 earlyprintk=serial,ttyS0,115200 panic=-1 quiet cryptomgr.notests=1"


def under_hv(backend: str, kernel: Path, initrd: Path, cpus: int) -> float:
    """Seconds from the session's start to the marker, with the hypervisor hosting Linux."""
    seen: list[float] = []
    t0 = time.monotonic()

    def on_line(line: str) -> None:
        if ga.MARKER in line and not seen:
            seen.append(time.monotonic() - t0)

    cls = QemuSession if backend == "qemu" else BochsSession
    session = cls(
        cpus=cpus, memory_mb=MEMORY_MB, timeout=900, guest=GuestSpec(kernel, initrd, APPEND), on_line=on_line
    )
    try:
        session.start()
        result = session.wait()
    finally:
        session.close()
    if not seen:
        raise RuntimeError(f"{backend}: no marker ({result.message})")
    return seen[0]


def bare_bochs(kernel: Path, initrd: Path, cpus: int, tmp: Path) -> float:
    """Seconds from Bochs' start to the marker, Linux booted by GRUB without the hypervisor."""
    iso_dir = tmp / "iso"
    (iso_dir / "boot" / "grub").mkdir(parents=True, exist_ok=True)
    shutil.copy(kernel, iso_dir / "boot" / "vmlinuz")
    shutil.copy(initrd, iso_dir / "boot" / "initrd")
    (iso_dir / "boot" / "grub" / "grub.cfg").write_text(
        f'set timeout=0\nmenuentry "linux" {{\n  linux /boot/vmlinuz {APPEND}\n  initrd /boot/initrd\n}}\n'
    )
    iso = tmp / "bare.iso"
    subprocess.run(
        ["grub-mkrescue", "--directory=/usr/lib/grub/i386-pc", "-o", str(iso), str(iso_dir)],
        check=True, capture_output=True,
    )  # fmt: skip
    serial = tmp / "serial.txt"
    rc = tmp / "bochsrc"
    log = tmp / "bochs.log"
    # Bare Linux writes COM1 (console=ttyS0): bochsrc's guest console; COM2 stays the unused hv channel.
    text = bochsrc_text(
        iso=iso, cpus=cpus, memory_mb=MEMORY_MB, log=log, serial=tmp / "com2.txt", guest_console=serial,
        os_guest=True,
    )  # fmt: skip
    rc.write_text(text)
    (tmp / "debugger.rc").write_text("c\nquit\n")
    t0 = time.monotonic()
    proc = spawn(
        [tools.require_tool("bochs"), "-q", "-f", str(rc), "-rc", str(tmp / "debugger.rc")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        while time.monotonic() - t0 < 900 and proc.poll() is None:
            if serial.exists() and ga.MARKER in serial.read_text(errors="replace"):
                return time.monotonic() - t0
            time.sleep(0.2)
        raise RuntimeError("bare bochs: no marker")
    finally:
        stop(proc)


def children_cpu_s() -> float:
    """User + system seconds of every child process waited for so far (the emulators)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bochs", action="store_true", help="also Bochs (VT-x), 1 CPU, one run each")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cpus", type=int, action="append", help="QEMU CPU counts to measure (default: 1 and 2)")
    args = ap.parse_args()
    assets = ga.fetch_assets()
    print(
        f"kernel {assets.kernel_package.package} {assets.kernel_package.version}, "
        f"{assets.busybox_package.package} {assets.busybox_package.version}, {MEMORY_MB} MiB, "
        f"median of {args.rounds} (QEMU)"
    )
    with tempfile.TemporaryDirectory(prefix="hvtrace-linux-boot-") as tmp:
        initrd = ga.build_initramfs(assets.busybox, Path(tmp) / ga.INITRAMFS_NAME)
        for cpus in args.cpus or (1, 2):
            bare, hv, bare_cpu, hv_cpu = [], [], [], []
            for _ in range(args.rounds):  # interleaved: both see the same machine load
                cpu0 = children_cpu_s()
                bare.append(ga.boot_bare_qemu(assets.kernel, initrd, cpus, MEMORY_MB, append=APPEND).seconds)
                cpu1 = children_cpu_s()
                hv.append(under_hv("qemu", assets.kernel, initrd, cpus))
                bare_cpu.append(cpu1 - cpu0)
                hv_cpu.append(children_cpu_s() - cpu1)
            b, h = statistics.median(bare), statistics.median(hv)
            bc, hc = statistics.median(bare_cpu), statistics.median(hv_cpu)
            runs = f"bare {', '.join(f'{t:.2f}' for t in bare)}; hv {', '.join(f'{t:.2f}' for t in hv)}"
            print(
                f"qemu tcg {cpus} CPU{'s' if cpus > 1 else ' '}: bare {b:6.2f} s, hvtrace (svm) {h:6.2f} s, "
                f"ratio {h / b:.2f}  ({runs})\n    host CPU time: bare {bc:.2f} s, hvtrace {hc:.2f} s, "
                f"ratio {hc / bc:.2f}"
            )
        if args.bochs:
            b = bare_bochs(assets.kernel, initrd, 1, Path(tmp))
            h = under_hv("bochs", assets.kernel, initrd, 1)
            print(f"bochs   1 CPU : bare {b:6.2f} s, hvtrace (vmx) {h:6.2f} s, ratio {h / b:.2f}")


if __name__ == "__main__":
    main()
