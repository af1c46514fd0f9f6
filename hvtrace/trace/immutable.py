"""The hypervisor memory that must never change after launch, seen from outside the machine (issue 13).

The discovery header lists it (abi.h ``immutable``: a table of struct hv_range in the image): the image's
code and read-only data, the host page tables, each CPU's GDT/TSS/IDT and its MSR and I/O permission
maps. :func:`fingerprint` reads the table and hashes every range from one view of guest memory (QEMU's
shared RAM file, a Bochs RAM dump); :func:`differences` compares two fingerprints, the one taken once
every CPU runs as a guest and the one after the run.
"""

from __future__ import annotations

import ctypes
import hashlib
from dataclasses import dataclass

from hvtrace.abi import HV_IMMUTABLE_MAX, HvDiscovery, HvRange
from hvtrace.exitcodes import ExitCode
from hvtrace.trace.errors import TraceError
from hvtrace.trace.sources import MemorySource

RANGE_SIZE = ctypes.sizeof(HvRange)


@dataclass(frozen=True)
class Fingerprint:
    """The immutable ranges a header listed, (base, length), and the SHA-256 of each one's bytes."""

    ranges: tuple[tuple[int, int], ...]
    digests: tuple[str, ...]

    @property
    def total_bytes(self) -> int:
        return sum(length for _, length in self.ranges)


def immutable_ranges(source: MemorySource, header: HvDiscovery) -> list[tuple[int, int]]:
    """The (base, length) table the header points at; a one-line TraceError when it is unusable."""
    count = header.immutable_count
    if not header.immutable or not 0 < count <= HV_IMMUTABLE_MAX:
        raise TraceError(ExitCode.BAD_DATA, f"{source.name}: no usable immutable-range table (count {count})")
    table = source.read(header.immutable, count * RANGE_SIZE)
    ranges = [HvRange.from_buffer_copy(table, i * RANGE_SIZE) for i in range(count)]
    return [(r.base, r.length) for r in ranges]


def fingerprint(source: MemorySource, header: HvDiscovery) -> Fingerprint:
    """Hash every immutable range the header lists. The table itself (it lies in the image) is compared
    as the ranges it yields."""
    ranges = immutable_ranges(source, header)
    digests = [hashlib.sha256(source.read(base, length)).hexdigest() for base, length in ranges]
    return Fingerprint(tuple(ranges), tuple(digests))


def differences(before: Fingerprint, after: Fingerprint) -> list[str]:
    """One line per range that changed (or one for a changed table); empty when the two views agree."""
    if before.ranges != after.ranges:
        counts = f"{len(before.ranges)} ranges before, {len(after.ranges)} after"
        return [f"the immutable-range table changed ({counts})"]
    pairs = enumerate(zip(before.ranges, before.digests, after.digests, strict=True))
    return [f"[{base:#x}-{base + n:#x}) changed (range {i})" for i, ((base, n), b, a) in pairs if a != b]
