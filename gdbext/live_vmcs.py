"""Live VMCS fields through the hypervisor's resident gdb stub (issue 17): ``monitor vmread F...``
runs VMREAD on the CPU that stopped (hv/core/gdbstub/hv_target.c) and answers "CPU n" then one
"FIELD VALUE" line per field (hex; "FIELD -" where VMREAD failed)."""

from __future__ import annotations

import gdb

from hvtrace.decode import vmcs_fields

from .model import HvError

BATCH = 32  # fields per monitor command: its answer fits the stub's packet


def vmread(fields: list[int]) -> tuple[int, dict[int, int | None]]:
    """(the CPU that answered, field -> live value or None)."""
    cpu = -1
    values: dict[int, int | None] = {}
    for i in range(0, len(fields), BATCH):
        cmd = "monitor vmread " + " ".join(f"{f:x}" for f in fields[i : i + BATCH])
        try:
            text = gdb.execute(cmd, to_string=True)
        except gdb.error as e:
            raise HvError(
                f"--live needs the hypervisor's gdb stub (hvtrace run --gdb on Bochs): {e}"
            ) from None
        lines = text.strip().splitlines()
        if not lines or not lines[0].startswith("CPU "):
            raise HvError(
                f"--live: the stub answered {text.strip()!r} (a VT-x run on the hypervisor's stub?)"
            )
        cpu = int(lines[0].split()[1])
        for line in lines[1:]:
            enc, value = line.split()
            values[int(enc, 16)] = None if value == "-" else int(value, 16)
    return cpu, values


def compare_lines(cpu: int, snapshot: list[tuple[int, int]]) -> list[str]:
    """The snapshot's fields read again live on ``cpu`` (which must be the CPU that stopped)."""
    live_cpu, live = vmread([enc for enc, _ in snapshot])
    if live_cpu != cpu:
        raise HvError(f"--live reads the stopped CPU's VMCS: CPU {live_cpu}, not CPU {cpu}")
    same = sum(1 for enc, v in snapshot if live.get(enc) == v)
    out = [f"live VMREAD on CPU {cpu}: {len(snapshot)} fields, {same} equal to the snapshot"]
    for enc, v in snapshot:
        now = live.get(enc)
        if enc == vmcs_fields.encoding_of("VM_EXIT_REASON") or now != v:
            shown = "VMfail" if now is None else f"{now:#x}"
            out.append(f"  {vmcs_fields.name_of(enc):<36} {enc:#06x}  snapshot {v:#x}  live {shown}")
    return out
