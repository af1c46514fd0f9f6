"""Linux boot-to-marker time: Debian's kernel + the busybox initramfs, median of ROUNDS, 1 and 2 CPUs.

Bare QEMU TCG for now (hvtrace.guest_assets.boot_bare_qemu: the kernel is QEMU's -kernel, no
hypervisor); the hypervisor-hosted case goes beside it once the hypervisor boots Linux. The time runs
from QEMU's start to the /init marker line on the serial console. No asserts: numbers for the notes.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from hvtrace import guest_assets as ga

ROUNDS = 3
CPUS = (1, 2)
MEMORY_MB = 512


def main() -> None:
    assets = ga.fetch_assets()
    print(
        f"kernel {assets.kernel_package.package} {assets.kernel_package.version}, "
        f"{assets.busybox_package.package} {assets.busybox_package.version}, {MEMORY_MB} MiB, "
        f"-cpu {ga.QEMU_CPU}, median of {ROUNDS}"
    )
    with tempfile.TemporaryDirectory(prefix="hvtrace-linux-boot-") as tmp:
        initrd = ga.build_initramfs(assets.busybox, Path(tmp) / ga.INITRAMFS_NAME)
        for cpus in CPUS:
            runs = [ga.boot_bare_qemu(assets.kernel, initrd, cpus, MEMORY_MB) for _ in range(ROUNDS)]
            times = [r.seconds for r in runs]
            print(
                f"bare qemu tcg, {cpus} CPU{'s' if cpus > 1 else ' '}: {statistics.median(times):6.2f} s "
                f"(runs {', '.join(f'{t:.2f}' for t in times)})  {runs[-1].marker_line}"
            )


if __name__ == "__main__":
    main()
