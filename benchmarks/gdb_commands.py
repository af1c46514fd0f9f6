"""Wall time of hv-* commands over the QEMU gdbstub: hv-ept --summary and hv-vmcs, one run.

Boots a default QEMU session (SVM under TCG, 1 CPU, 256 MiB, storm=1) and drives real gdb through
pygdbmi as tests/integration/test_gdb_qemu.py does: `hv-ept --summary` walks the whole NPT (the 4 GiB
identity map); `hv-vmcs` decodes the snapshot taken at an `hv-break cpuid` stop; `hv-exits -n 10` (the
records plus capstone disassembly at each RIP) for comparison. Each command runs once to warm up, then
ROUNDS times; the time is from writing the command to gdb's MI result record (not the pygdbmi drain
that Gdb.cmd adds after it). Median and spread in ms. No asserts: numbers for the notes.
"""

from __future__ import annotations

import statistics
import sys
import time

from hvtrace import paths
from hvtrace.launch.qemu import QemuSession

sys.path.insert(0, str(paths.repo_root()))
from hvtrace.gdbmi import Gdb

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 7


def timed(gdb: Gdb, command: str, timeout: float = 120) -> tuple[float, str]:
    """Seconds until the MI result record of one CLI command, and its console text."""
    gdb.ctl.write(command, timeout_sec=0, raise_error_on_timeout=False, read_response=False)
    t0 = time.perf_counter()
    out: list[dict[str, object]] = []
    while time.perf_counter() - t0 < timeout:
        got = gdb.ctl.get_gdb_response(timeout_sec=0.002, raise_error_on_timeout=False)
        out.extend(got)
        result = next((r for r in got if r["type"] == "result"), None)
        if result is not None:
            dt = time.perf_counter() - t0
            if result["message"] == "error":
                raise RuntimeError(f"{command}: {result['payload']}")
            text = "".join(str(r["payload"]) for r in out if r["type"] == "console")
            return dt, text
    raise TimeoutError(f"{command}: no answer in {timeout} s")


def measure(gdb: Gdb, command: str) -> tuple[list[float], str]:
    _, text = timed(gdb, command)  # warm-up (gdb's first reads, capstone's import)
    return [timed(gdb, command)[0] * 1e3 for _ in range(ROUNDS)], text


def report(command: str, ms: list[float], note: str) -> None:
    med = statistics.median(ms)
    print(f"  {command:<22} {med:8.1f} ms median  (min {min(ms):.1f}, max {max(ms):.1f})  {note}")


def main() -> None:
    session = QemuSession(cmdline="storm=1", timeout=600)  # defaults: 1 CPU, 256 MiB
    try:
        session.start()
        deadline = time.monotonic() + 120
        while not any("storm:" in line for line in session.lines):
            if time.monotonic() > deadline:
                raise TimeoutError("the storm never started")
            time.sleep(0.05)
        with Gdb() as gdb:
            gdb.load()
            gdb.ok(f"target remote 127.0.0.1:{session.gdb_port}")
            ept, text = measure(gdb, "hv-ept --summary")
            ranges = sum(1 for line in text.splitlines() if line.startswith("0x"))
            gdb.ok("hv-break cpuid")
            gdb.continue_until_stop()
            gdb.ok("hv-break delete all")
            vmcs, text = measure(gdb, "hv-vmcs")
            fields = sum(1 for line in text.splitlines() if line.startswith("  "))
            exits, _ = measure(gdb, "hv-exits -n 10")
        where = f"TCG, 1 CPU, {session.memory_mb} MiB"
        print(f"hv-* commands over the QEMU gdbstub ({where}), {ROUNDS} runs each")
        report("hv-ept --summary", ept, f"({ranges} merged ranges over the 4 GiB map)")
        report("hv-vmcs", vmcs, f"({fields} lines, VMCB snapshot at an hv-break stop)")
        report("hv-exits -n 10", exits, "(10 records + capstone disassembly)")
    finally:
        session.close()


if __name__ == "__main__":
    main()
