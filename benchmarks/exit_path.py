"""Hypervisor instructions per exit round trip, counted by single-stepping (deterministic, unlike
wall-clock rates on a shared machine; issue 18).

QEMU TCG (SVM back end), 1 CPU, two workloads:
  storm   `storm=1 storm_mix=1`: the hypervisor's own guest (64-bit, 4-level paging) exits for CPUID
          (leaves 0-7) and RDMSR (MTRRcap, emulated) in a loop (boot/guests/storm.c)
  mbtest  the multiboot test kernel with `exit_loop` (32-bit, PAE paging) exits for CPUID, RDMSR, IN
          (port 0xE9) and a TPR store (a stage-2 fault, emulated) in a loop (boot/guests/mbtest)
gdb (hvtrace.gdbmi.Gdb) attaches to QEMU's gdbstub, which masks interrupts while
stepping, and benchmarks/exit_path_steps.py single-steps from the instruction after VMRUN back to VMRUN,
reading each trip's exit code from the VMCB. Stepped RIPs are symbolized with the hypervisor ELF
(pyelftools) after subtracting the slide the hypervisor printed. A REP string instruction counts once
per iteration (QEMU steps iterations).

Configurations (the break table is written through the RAM file, as gdbext writes it):
  trace on        the default
  break kind      + an armed `hv-break msr_write --msr 0x12345678`: rejected by the CPU's compiled
                  table (by_kind, breaks.h) before any check
  break cond      + an armed `hv-break cpuid if rax == 0x12345678`: the condition is evaluated on
                  every CPUID exit (never true)
  trace=0         rings disabled (exits are still counted)
  stub idle       + the hypervisor's resident gdb stub present and idle (`--gdb-stub hv`: gdbstub=1, COM3
                  a TCP server with no gdb): its per-exit look at the UART (issue 17's idle cost)
The first trip after arming compiles the table on the CPU (once per generation, breaks.c) and is not
counted. The storm's and mbtest's CPUID trips differ by leaf (the leaves the hypervisor adjusts, 1 and
7 of the 0-7 they cycle through, take ~30 more): with --samples 8 the median trip is a plain leaf in
every configuration. The tracing and break checks are inline in the exit path (issue 18), so their
costs are the differences between configurations; issue 16 counted them by function (mbtest CPUID in
trace_exit/break*: the generic table walk 42 / 49 / 126, the per-CPU pre-decoded checks 31 / 38 / 59).

Usage: exit_path.py [--quick] [--samples N] [--json] [--build DIR] [--bochs]
  --quick   trace on only, one trip per exit kind (CI: tests/integration/test_exit_path_bench.py)
  --json    one JSON object instead of the tables: {config: {kind: instructions}}
  --build   another `make -C hv BUILD=DIR` output (hvtrace.elf, guests/mbtest.elf), e.g. of an older commit
The "(before)" columns hold the counts this script measured before issue 18's cuts (BEFORE below), for
comparison. `--bochs` adds Bochs (VT-x): the storm, trace on, trace=0 and "ring full", counted from its
debugger's instruction trace (benchmarks/exit_path_bochs.py). "ring full" is `ring=16`: a ring nobody
reads, full within the first exits, so every record overwrites its oldest (each reservation also looks
at the reader). That is the state of a plain run once its ring has filled, and the state QEMU's
steady-state trips above are measured in; Bochs' storm, 10000 steps after its start, still has room.
No asserts: numbers for the notes.
"""

from __future__ import annotations

import argparse
import bisect
import collections
import json
import re
import sys
import tempfile
import time
from pathlib import Path

from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from hvtrace import paths, relocation
from hvtrace.gdbmi import Gdb, console_text
from hvtrace.launch.guest import GuestSpec
from hvtrace.launch.qemu import QemuSession
from hvtrace.trace.discovery import discover
from hvtrace.trace.sources import SharedRamSource

sys.path.insert(0, str(paths.repo_root()))
from benchmarks.break_table import arm
from benchmarks.exit_path_bochs import bochs_trips
from tests.integration.conftest import wait_for

KINDS = {0x72: "CPUID", 0x7C: "RDMSR", 0x7B: "IN", 0x400: "NPF"}
#: workload: (console text once it runs, exit kinds per round)
WORKLOADS = {"storm": ("storm:", 2), "mbtest": ("mbtest: exit_loop", 4)}
#: The command-line marker of the "stub idle" configuration: the session runs the hypervisor's resident gdb
#: stub (`--gdb-stub hv`: gdbstub=1 on COM3, a TCP server nobody connects to) and gdb steps through
#: QEMU's own gdbstub on its other port.
STUB_IDLE = "gdbstub=1"
#: (label, extra command line, break spec)
CONFIGS = {
    "trace on": ("", None),
    "break kind": ("", "msr_write --msr 0x12345678"),
    "break cond": ("", "cpuid if rax == 0x12345678"),
    "trace=0": ("trace=0", None),
    "stub idle": (STUB_IDLE, None),
}
#: Measured before the cuts of issue 18: main at 0fd4704 plus only the two workloads (commit bcf3758, with
#: RDMSR of MTRRcap as in 85740be), `--samples 1`, QEMU 7.2 TCG. The storm's CPUID leaf (0-7) varies
#: by trip: leaves 1 and 7 cost more.
Counts = dict[str, dict[str, int]]
BEFORE: Counts = {
    "trace on": {"storm CPUID": 1308, "storm RDMSR": 1677, "mbtest CPUID": 1242, "mbtest RDMSR": 1612,
                 "mbtest IN": 847, "mbtest NPF": 2616},
    "break kind": {"storm CPUID": 1317, "storm RDMSR": 1686, "mbtest CPUID": 1251, "mbtest RDMSR": 1620,
                   "mbtest IN": 856, "mbtest NPF": 2625},
    "break cond": {"storm CPUID": 1404, "storm RDMSR": 1686, "mbtest CPUID": 1318, "mbtest RDMSR": 1620,
                   "mbtest IN": 856, "mbtest NPF": 2625},
    "trace=0": {"storm CPUID": 1238, "storm RDMSR": 1593, "mbtest CPUID": 1157, "mbtest RDMSR": 1526,
                "mbtest IN": 762, "mbtest NPF": 2531},
}  # fmt: skip
#: The same on Bochs (--bochs, Bochs 2.7), before the cuts (bcf3758 with the MTRRcap RDMSR, 12000 steps).
BOCHS_BEFORE: Counts = {
    "trace on": {"storm CPUID": 525, "storm RDMSR": 890},
    "trace=0": {"storm CPUID": 440, "storm RDMSR": 805},
}
VMRUN = b"\x0f\x01\xd8"
QEMU_HOW = (
    "Hypervisor instructions per exit round trip (after VMRUN .. VMRUN), QEMU TCG (SVM), 1 CPU;\n"
    "storm and mbtest exit_loop workloads, gdb single-stepping; the median trip of each kind"
)
BOCHS_HOW = (
    "Hypervisor instructions per exit round trip (vmx_exit_stub .. VMRESUME), Bochs (VT-x), 1 CPU;\n"
    "the storm workload, Bochs' debugger instruction trace; the median trip of each kind"
)
STEP_LIMIT = 20000


class Symbols:
    """Link-address function symbols of the hypervisor ELF; :meth:`name` of a runtime address."""

    def __init__(self, elf: Path) -> None:
        with elf.open("rb") as f:
            e = ELFFile(f)
            text = e.get_section_by_name(".text")
            self.text_lo, self.text_hi = text["sh_addr"], text["sh_addr"] + text["sh_size"]
            data = text.data()
            syms: dict[int, str] = {}
            for sec in e.iter_sections():
                if not isinstance(sec, SymbolTableSection):
                    continue
                for s in sec.iter_symbols():
                    at, kind = s["st_value"], s["st_info"]["type"]
                    named = s.name and not s.name.startswith(".") and kind in ("STT_FUNC", "STT_NOTYPE")
                    if named and self.text_lo <= at < self.text_hi and (at not in syms or kind == "STT_FUNC"):
                        syms[at] = s.name
        self.addrs = sorted(syms)
        self.names = [syms[a] for a in self.addrs]
        # Every VMRUN of the loop (one per kind of guest: blue pill, loaded), up to the next symbol.
        i = self.names.index("svm_vmrun_loop")
        end = self.addrs[i + 1] if i + 1 < len(self.addrs) else self.text_hi
        lo, hi = self.addrs[i] - self.text_lo, end - self.text_lo
        self.vmruns = [self.text_lo + lo + m.start() for m in re.finditer(re.escape(VMRUN), data[lo:hi])]

    def addr(self, name: str) -> int:
        return self.addrs[self.names.index(name)]

    def name(self, link_addr: int) -> str:
        i = bisect.bisect_right(self.addrs, link_addr) - 1
        return self.names[i] if i >= 0 and self.text_lo <= link_addr < self.text_hi else "?"


def step_trips(gdb: Gdb, slide: int, syms: Symbols, trips: int) -> list[dict[str, object]]:
    with tempfile.TemporaryDirectory(prefix="exit-path-") as tmp:
        out = Path(tmp) / "trips.json"
        vmruns = [v + slide for v in syms.vmruns]
        reply = gdb.cmd(f"python hv_exit_trips({vmruns}, {len(VMRUN)}, {trips}, {STEP_LIMIT}, '{out}')")
        if reply.error is not None:
            raise RuntimeError(reply.error)
        deadline = time.monotonic() + 1800
        text = ""
        while not out.exists():
            got = gdb.read(1.0)
            text = (text + console_text(got))[-4000:]
            failed = any(r["type"] == "result" and r["message"] == "error" for r in got)
            if failed or "Error" in text or time.monotonic() > deadline:
                raise RuntimeError(f"stepping failed: {got[-5:]} {text[-2000:]}")
        got: list[dict[str, object]] = json.loads(out.read_text())
        return got


def by_kind(trips: list[dict[str, object]]) -> dict[str, list[list[int]]]:
    kinds: dict[str, list[list[int]]] = collections.defaultdict(list)
    for t in trips:
        code = int(t["code"])  # type: ignore[call-overload]
        kinds[KINDS.get(code, f"code {code:#x}")].append(list(t["pcs"]))  # type: ignore[call-overload]
    return kinds


def median_trip(pcs_list: list[list[int]]) -> list[int]:
    order = sorted(pcs_list, key=len)
    return order[len(order) // 2]


def functions(pcs: list[int], slide: int, syms: Symbols) -> collections.Counter[str]:
    return collections.Counter(syms.name(pc - slide) for pc in pcs)


def workload_session(build: Path, workload: str, extra: str) -> QemuSession:
    """The QEMU session of one workload (see the module doc), ``extra`` added to the hypervisor's words."""
    elf = build / "hvtrace.elf"
    stub = "hv" if extra == STUB_IDLE else "qemu"
    extra = "" if extra == STUB_IDLE else extra  # the session adds gdbstub=1 itself
    if workload == "storm":
        words = f"storm=1 storm_mix=1 {extra}".strip()
        return QemuSession(cpus=1, memory_mb=64, cmdline=words, timeout=3600, elf=elf, gdb_stub=stub)
    spec = GuestSpec(build / "guests" / "mbtest.elf", cmdline="exit_loop")
    return QemuSession(cpus=1, memory_mb=64, cmdline=extra, guest=spec, timeout=3600, elf=elf, gdb_stub=stub)


def measure(build: Path, quick: bool, samples: int) -> tuple[dict[str, dict[str, list[int]]], Symbols]:
    """{config: {workload kind: the median trip's RIPs (link addresses)}} and the symbols."""
    syms = Symbols(build / "hvtrace.elf")
    configs = {"trace on": CONFIGS["trace on"]} if quick else CONFIGS
    result: dict[str, dict[str, list[int]]] = {label: {} for label in configs}
    for workload, (ready, nkinds) in WORKLOADS.items():
        for cmdline in dict.fromkeys(c for c, _ in configs.values()):
            session = workload_session(build, workload, cmdline)
            try:
                session.start()
                # The slide line too: the workload's text can be read before it (mbtest prints on COM1).
                wait_for(
                    lambda s=session, r=ready: (
                        any(r in line for line in s.lines)
                        and relocation.slide_from_console(s.lines) is not None
                    ),
                    120,
                    ready,
                )
                slide = relocation.slide_from_console(session.lines)
                assert slide is not None, "the hypervisor printed no slide"
                assert session.ram_path is not None
                src = SharedRamSource(session.ram_path)
                with Gdb() as gdb:
                    gdb.ok(f"target remote 127.0.0.1:{session.qemu_gdb_port}", 120)
                    gdb.ok(f"source {Path(__file__).with_name('exit_path_steps.py')}")
                    d = discover(src, elf=build / "hvtrace.elf")
                    for label, (cl, spec) in configs.items():
                        if cl != cmdline:
                            continue
                        arm(src, d, spec)
                        print(f"exit_path: {workload}, {label}: stepping", file=sys.stderr, flush=True)
                        # The first trip after arm() compiles the new table on this CPU (breaks.c, once per
                        # generation): stepped but not counted, so each count is the steady exit path.
                        trips = step_trips(gdb, slide, syms, 1 + nkinds * (1 if quick else samples))[1:]
                        for k, v in by_kind(trips).items():
                            result[label][f"{workload} {k}"] = [pc - slide for pc in median_trip(v)]
                    arm(src, d, None)
                src.close()
            finally:
                session.close()
    return result, syms


def measure_bochs(build: Path, syms: Symbols, steps: int) -> dict[str, dict[str, list[int]]]:
    """Bochs (VT-x), the storm: {trace on / trace=0 / ring full: {kind: the median trip's RIPs}}."""
    result = {}
    for label, extra in (("trace on", ""), ("trace=0", "trace=0"), ("ring full", "ring=16")):
        print(f"exit_path: bochs storm, {label}: tracing", file=sys.stderr, flush=True)
        found = bochs_trips(build, syms.addr("storm_loop"), syms.addr("vmx_exit_stub"), extra, steps)
        result[label] = {f"storm {k}": median_trip(v) for k, v in found.items()}
    return result


def print_tables(
    result: dict[str, dict[str, list[int]]], syms: Symbols, how: str = QEMU_HOW, before: Counts | None = None
) -> None:
    before = BEFORE if before is None else before
    labels = list(result)
    print(how)
    head = f"{'exit':<14}" + "".join(f"{lab:>12}" for lab in labels)
    head += "".join(f"{'(before) ' + lab:>22}" for lab in labels if lab in before)
    print(head)
    kinds = list(dict.fromkeys(k for r in result.values() for k in r))
    for kind in kinds:
        row = f"{kind:<14}" + "".join(f"{len(result[lab].get(kind, [])):>12}" for lab in labels)
        row += "".join(f"{before[lab].get(kind, 0):>22}" for lab in labels if lab in before)
        print(row)
    on = result.get("trace on", {})
    if "trace=0" in result:
        print("tracing costs (trace on - trace=0):",
              ", ".join(f"{k} {len(on[k]) - len(result['trace=0'].get(k, []))}" for k in on))  # fmt: skip
    for lab in ("break kind", "break cond", "stub idle", "ring full"):
        if lab in result:
            print(f"{lab} costs ({lab} - trace on):",
                  ", ".join(f"{k} {len(result[lab].get(k, [])) - len(on[k])}" for k in on))  # fmt: skip
    for kind, pcs in on.items():
        print(f"\n{kind}, trace on, {len(pcs)} instructions by function:")
        for name, n in functions(pcs, 0, syms).most_common():
            print(f"  {n:>5}  {name}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="trace on only, one trip per exit kind")
    ap.add_argument("--samples", type=int, default=8, help="trips per exit kind and configuration")
    ap.add_argument("--json", action="store_true", help="{config: {kind: instructions}} as JSON")
    ap.add_argument("--build", type=Path, default=paths.build_dir(), help="hv build dir (default hv/build)")
    ap.add_argument("--bochs", action="store_true", help="also Bochs (VT-x): the storm")
    args = ap.parse_args()
    result, syms = measure(args.build, args.quick, args.samples)
    bochs = measure_bochs(args.build, syms, 10000 * args.samples) if args.bochs else {}
    if args.json:
        print(json.dumps({lab: {k: len(v) for k, v in r.items()} for lab, r in result.items()}))
        return
    print_tables(result, syms)
    if bochs:
        print()
        print_tables(bochs, syms, BOCHS_HOW, BOCHS_BEFORE)


if __name__ == "__main__":
    main()
