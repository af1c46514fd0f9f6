"""hv-ept: walk one guest-physical address, or summarise the whole EPT / NPT map."""

from __future__ import annotations

import argparse

from hvtrace.decode import stage2

from . import model, target
from .command import HvCommand, emit
from .options import OptionParser, number


def _memtype(text: str) -> int:
    try:
        return stage2.parse_memtype(text)
    except ValueError:
        raise model.HvError(f"bad memory type {text!r} (WB, UC, WC, WT, WP)") from None


def _perms(text: str) -> int:
    try:
        return stage2.parse_perms(text)
    except ValueError:
        raise model.HvError(f"bad permissions {text!r} (e.g. rwx, r-x, ---)") from None


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
    WORDS = ("WB", "UC", "WC", "WT", "WP", "rwx")

    def declare(self, p: OptionParser) -> None:
        p.add_argument("gpa", nargs="*")
        p.add_argument("--summary", action="store_true")
        p.add_argument("--type", dest="types", action="append", type=_memtype, default=[])
        p.add_argument("--perm", type=_perms)
        p.add_argument("--range", type=lambda text: model.parse_range(text, "guest-physical range"))
        p.add_argument("--cpu", type=number("CPU"))  # accepted for symmetry: one stage-2 root for all CPUs

    def run(self, args: argparse.Namespace) -> None:
        summary, types, perm = args.summary, args.types, args.perm
        lo, hi = (args.range[0], args.range[1] + 1) if args.range is not None else (0, None)
        if len(args.gpa) > 1:
            raise model.HvError(f"one address at a time (got {' '.join(args.gpa)!r})")
        gpa = model.parse_int(args.gpa[0], "guest-physical address") if args.gpa else None
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
