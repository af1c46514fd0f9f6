"""hv-ept: walk one guest-physical address, or summarise the whole EPT / NPT map."""

from __future__ import annotations

from hvtrace.decode import stage2

from . import model, target
from .command import HvCommand, emit


class HvEpt(HvCommand):
    """Walk the stage-2 tables (EPT on VT-x, NPT on AMD-V) from hv_trace.stage2_root.

    Usage: hv-ept GPA [--cpu N]
           hv-ept --summary [--type T] [--perm P] [--range A-B]

      GPA         guest-physical address: each level's entry, RWX, memory type, ignore-PAT, large page,
                  accessed/dirty, and the resulting host-physical address
      --cpu N     accepted for symmetry: every CPU shares one stage-2 root in hvtrace
      --summary   the whole map as merged ranges (start-end, permissions, type, page size)
      --type T    keep ranges of memory type T (WB, UC, WC, WT, WP; repeatable)
      --perm P    keep ranges with exactly these permissions (rwx, r-x, ---, ...)
      --range A-B only [A, B]

    Examples:
      (gdb) hv-ept 0x100000
      (gdb) hv-ept --summary --range 0-0xffffffff
      (gdb) hv-ept --summary --type UC"""

    NAME = "ept"
    WORDS = ("--summary", "--type", "--perm", "--range", "--cpu", "WB", "UC", "WC", "WT", "WP", "rwx")

    def run(self, args: list[str]) -> None:
        summary = False
        types: list[int] = []
        perm: int | None = None
        lo, hi = 0, None
        gpa: int | None = None
        i = 0
        while i < len(args):
            a = args[i]
            if a == "--summary":
                summary, i = True, i + 1
                continue
            if a in ("--type", "--perm", "--range", "--cpu"):
                value = model.take_value(args, i, a)
                if a == "--type":
                    try:
                        types.append(stage2.parse_memtype(value))
                    except ValueError:
                        raise model.HvError(f"bad memory type {value!r} (WB, UC, WC, WT, WP)") from None
                elif a == "--perm":
                    try:
                        perm = stage2.parse_perms(value)
                    except ValueError:
                        raise model.HvError(f"bad permissions {value!r} (e.g. rwx, r-x, ---)") from None
                elif a == "--range":
                    lo, top = model.parse_range(value, "guest-physical range")
                    hi = top + 1
                else:
                    model.parse_int(value, "CPU")
                i += 2
                continue
            if a.startswith("-") and not a[1:2].isdigit():
                raise model.HvError(f"unknown option {a!r} (see help hv-ept)")
            if gpa is not None:
                raise model.HvError(f"one address at a time (got {gpa:#x} and {a!r})")
            gpa = model.parse_int(a, "guest-physical address")
            i += 1
        _, d = target.discovery()
        kind = model.stage2_kind(d.vendor)
        if not d.stage2_root:
            raise model.HvError("no stage-2 tables yet (hv_trace.stage2_root is 0: not launched)")
        name = kind.upper()
        if summary:
            if gpa is not None:
                raise model.HvError("--summary takes no address (use --range A-B)")
            ranges = stage2.summarise(
                d.stage2_root,
                read_table=lambda a: model.table_from(target.read(a, 4096)),
                kind=kind,  # type: ignore[arg-type]
                start=lo,
                end=hi,
                types=types or None,
                perms=perm,
            )
            emit(
                [
                    f"{name} map from root {d.stage2_root:#x}: {len(ranges)} ranges",
                    *(r.describe() for r in ranges),
                ]
            )
            return
        if gpa is None:
            raise model.HvError("which guest-physical address? e.g. hv-ept 0x100000 (or --summary)")
        if gpa >> 48:
            raise model.HvError(f"bad guest-physical address {gpa:#x} (beyond the 48-bit stage-2 space)")
        if types or perm is not None or hi is not None:
            raise model.HvError("--type/--perm/--range go with --summary")

        def read_qword(a: int) -> int:
            return int.from_bytes(target.read(a, 8), "little")

        w = stage2.walk(d.stage2_root, gpa, read_qword, kind=kind)  # type: ignore[arg-type]
        emit([f"{name} walk of GPA {gpa:#x} from root {d.stage2_root:#x}:", *w.describe()])
