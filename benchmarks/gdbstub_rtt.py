"""Round-trip times of gdb commands through the hypervisor's resident gdb stub vs QEMU's gdbstub.

One 1-CPU storm session per target: QEMU's own gdbstub, the resident stub under QEMU (`--gdb-stub hv`)
and under Bochs (`--gdb`, through hvtrace's relay). gdb (with the hv-* commands) times each command
once the image's symbols are placed (hv-symbols): a bare packet (qC), raw memory reads, hv-cpus,
hv-vmcs --exit, hv-ept --summary. No asserts: numbers for the notes.
Usage: gdbstub_rtt.py [qemu-gdbstub|qemu-hv|bochs-hv ...]
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hvtrace import paths
from hvtrace.launch.bochs import BochsSession
from hvtrace.launch.qemu import QemuSession
from hvtrace.launch.session import Session

COMMANDS = ["maint packet qC", "x/16xb $pc", "x/256xb $pc", "hv-cpus", "hv-vmcs --exit", "hv-ept --summary"]
TIMER = """
import time, gdb
for c in {commands!r}:
    t0 = time.perf_counter()
    gdb.execute(c, to_string=True)
    print("  %-24s %8.3f s" % (c, time.perf_counter() - t0))
"""


def session(target: str) -> Session:
    opts = {"cpus": 1, "memory_mb": 64, "cmdline": "storm=1", "timeout": 1800.0}
    if target == "bochs-hv":
        return BochsSession(gdb_port=0, **opts)  # type: ignore[arg-type]
    return QemuSession(gdb_port=0, gdb_stub="hv" if target == "qemu-hv" else "qemu", **opts)  # type: ignore[arg-type]


def measure(target: str) -> None:
    with session(target) as s, tempfile.TemporaryDirectory() as tmp:
        while not any("storm:" in line for line in s.lines):
            time.sleep(0.5)
        script = Path(tmp) / "timer.py"
        script.write_text(TIMER.format(commands=COMMANDS))
        port = s.gdb_port  # type: ignore[attr-defined]
        argv = ["gdb", "-nx", "-batch", "-ex", "set remotetimeout 120",
                "-ex", f"source {paths.gdb_extension()}", "-ex", f"file {paths.image_path()}",
                "-ex", f"target remote 127.0.0.1:{port}", "-ex", "hv-symbols",
                "-ex", f"source {script}", "-ex", "detach"]  # fmt: skip
        r = subprocess.run(argv, capture_output=True, text=True, timeout=1800, check=False)
        print(f"{target}:")
        print("\n".join(line for line in r.stdout.splitlines() if line.endswith(" s")))


def main() -> None:
    for target in sys.argv[1:] or ["qemu-gdbstub", "qemu-hv", "bochs-hv"]:
        measure(target)


if __name__ == "__main__":
    main()
