"""Which records a capture keeps: CPUs and exit reasons (kind names or the back end's native names)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hvtrace.decode.vendor import reason_code
from hvtrace.exitcodes import ExitCode
from hvtrace.trace.errors import TraceError
from hvtrace.trace.records import Records, kind_code


@dataclass
class Filter:
    """Keep records of these CPUs and reasons (kind names or native reason names); None = all."""

    cpus: set[int] | None = None
    reasons: list[str] | None = None

    def apply(self, recs: Records, vendor: int) -> Records:
        mask = np.ones(len(recs), dtype=bool)
        if self.cpus is not None:
            mask &= np.isin(recs["cpu"], list(self.cpus))
        if self.reasons:
            mask &= reason_mask(recs, self.reasons, vendor)
        return recs if mask.all() else recs[mask]


def reason_mask(recs: Records, names: list[str], vendor: int) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Records whose kind (HV_EXIT_*) or native reason has one of ``names``."""
    mask = np.zeros(len(recs), dtype=bool)
    for name in names:
        kind = kind_code(name)
        native = reason_code(vendor, name)
        if kind is None and native is None:
            raise TraceError(
                ExitCode.USAGE, f"unknown exit reason {name!r} (an HV_EXIT_* kind or a native name)"
            )
        if kind is not None:
            mask |= recs["kind"] == kind
        else:
            mask |= recs["reason"] == native
    return mask
