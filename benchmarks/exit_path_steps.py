"""Sourced into gdb by benchmarks/exit_path.py (gdb's own Python; not imported by the host side).

``hv_exit_trips(vmruns, length, trips, limit, out)`` single-steps a stopped QEMU CPU: first to the
instruction after a VMRUN (``length`` bytes on; the loop has one VMRUN per kind of guest), then
``trips`` round trips, each from there to a VMRUN (both included), the guest stepped through in
between. Each trip's exit code is read from the VMCB (RAX holds its physical address after #VMEXIT,
APM Vol. 2 15.6; EXITCODE at offset 0x70, Appendix B). Writes ``[{"code": int, "pcs": [int, ...]},
...]`` as JSON to ``out`` (atomically: the host polls for it, since gdb answers a `python` command that
steps with ^running before it is done). QEMU's gdbstub masks interrupts and timers while stepping, so
a trip holds only the exit's own handling.
"""

import json
import os

import gdb  # type: ignore[import-not-found]


def _pc() -> int:
    return int(gdb.parse_and_eval("$pc")) & 0xFFFFFFFFFFFFFFFF


def _step() -> None:
    gdb.execute("stepi", to_string=True)


def _step_to(targets: set[int], limit: int) -> None:
    for _ in range(limit):
        if _pc() in targets:
            return
        _step()
    raise gdb.GdbError(f"no stop at {sorted(targets)} within {limit} steps")


def hv_exit_trips(vmruns: list[int], length: int, trips: int, limit: int, out: str) -> None:
    inf = gdb.selected_inferior()
    result = []
    stops, afters = set(vmruns), {v + length for v in vmruns}
    _step_to(afters, limit)
    for _ in range(trips):
        rax = int(gdb.parse_and_eval("$rax")) & 0xFFFFFFFFFFFFFFFF
        code = int.from_bytes(bytes(inf.read_memory(rax + 0x70, 8)), "little")
        pcs = [_pc()]
        while pcs[-1] not in stops:
            if len(pcs) > limit:
                raise gdb.GdbError(f"no VMRUN within {limit} steps of exit code {code:#x}")
            _step()
            pcs.append(_pc())
        result.append({"code": code, "pcs": pcs})
        _step()  # VMRUN: into the guest, stepped through to the next exit
        _step_to(afters, limit)
    with open(out + ".part", "w") as f:
        json.dump(result, f)
    os.replace(out + ".part", out)  # the host polls for ``out``: whole or absent
