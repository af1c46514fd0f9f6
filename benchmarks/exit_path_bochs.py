"""The Bochs (VT-x) half of benchmarks/exit_path.py: hypervisor instructions per exit round trip from
Bochs' debugger instruction trace (Debian's bochs has the debugger: `-rc` scripts, `vmexitbp`).

Two runs of the storm (`storm=1 storm_mix=1`, 1 CPU): the first only learns the slide the hypervisor
prints (it depends only on the memory size); the second runs a debugger script: a physical breakpoint
at storm_loop (the storm runs), then `vmexitbp` + `c` twice (at the HOST_RIP, vmx_exit_stub), then
`vmexitbp` (off), `trace on` and `s N`: every instruction, the guest's between the exits too. A trip runs from
vmx_exit_stub to its VMRESUME (both included); its kind is the last guest instruction before it (CPUID
or RDMSR). The first trip has no guest instruction before it in the trace and is dropped.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from hvtrace import relocation
from hvtrace.launch.bochs import BochsSession

#: `(0).[ticks] [0xPHYS] sel:linear (ctxt): mnemonic operands ; bytes`
TRACE_RE = re.compile(r"^\(\d+\)\.\[\d+\] \[0x([0-9a-f]+)\] [0-9a-f]+:[0-9a-f]+ \([^)]*\): (\S+)")
KINDS = {"cpuid": "CPUID", "rdmsr": "RDMSR"}
Trips = dict[str, list[list[int]]]


class _ScriptedBochs(BochsSession):
    """A Bochs session whose debugger runs ``script`` instead of the default `c` / `quit`."""

    def __init__(self, script: str | None, **options: object) -> None:
        super().__init__(**options)  # type: ignore[arg-type]
        self.script = script

    def _prepare(self, elf: Path) -> list[str]:
        argv = super()._prepare(elf)
        if self.script is not None:
            assert self.tmpdir is not None
            (self.tmpdir / "debugger.rc").write_text(self.script)
        return argv


def _slide(elf: Path, cmdline: str) -> int:
    s = _ScriptedBochs(None, cpus=1, memory_mb=64, cmdline=cmdline, timeout=900, elf=elf)
    try:
        s.start()
        deadline = time.monotonic() + 600
        while not any("storm:" in line for line in s.lines):
            if time.monotonic() > deadline or s.proc is None or s.proc.poll() is not None:
                raise RuntimeError("the storm did not start under Bochs")
            time.sleep(0.5)
        slide = relocation.slide_from_console(s.lines)
        assert slide is not None, "the hypervisor printed no slide"
        return slide
    finally:
        s.close()


def _trace_lines(elf: Path, cmdline: str, script: str) -> list[str]:
    s = _ScriptedBochs(script, cpus=1, memory_mb=64, cmdline=cmdline, timeout=900, elf=elf)
    try:
        s.start()
        deadline = time.monotonic() + 900
        while s.proc is not None and s.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        return list(s.stdout_lines)
    finally:
        s.close()


def trips(lines: list[str], stub: int) -> Trips:
    """{kind: [trip RIPs (physical = runtime linear)]} from a trace (see the module doc)."""
    out: Trips = {}
    last_guest: str | None = None
    trip: list[int] | None = None
    for line in lines:
        m = TRACE_RE.match(line)
        if m is None:
            continue
        at, mnemonic = int(m.group(1), 16), m.group(2)
        if trip is None and at == stub:
            trip = []
        if trip is None:
            last_guest = mnemonic
            continue
        trip.append(at)
        if mnemonic == "vmresume":
            kind = KINDS.get(last_guest or "")
            if kind is not None:
                out.setdefault(kind, []).append(trip)
            trip, last_guest = None, None
    return out


def bochs_trips(
    build: Path, storm_loop: int, stub: int, extra: str, steps: int
) -> dict[str, list[list[int]]]:
    """Trips by kind, as link addresses; ``storm_loop`` / ``stub``: link addresses of those symbols."""
    elf = build / "hvtrace.elf"
    cmdline = f"storm=1 storm_mix=1 {extra}".strip()
    slide = _slide(elf, cmdline)
    # vmexitbp toggles: off again before stepping, or the next exit would end `s`
    to_exit = [f"pb {storm_loop + slide:#x}", "c", "d 1", "vmexitbp", "c", "c", "vmexitbp"]
    commands = [*to_exit, "trace on", f"s {steps}"]
    script = "\n".join([*commands, "trace off", "quit", ""])
    found = trips(_trace_lines(elf, cmdline, script), stub + slide)
    return {k: [[pc - slide for pc in t] for t in v] for k, v in found.items()}
