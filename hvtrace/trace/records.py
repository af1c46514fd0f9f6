"""Exit records as numpy structured arrays: the dtype is derived from the ctypes mirror of abi.h."""

from __future__ import annotations

import ctypes
from typing import Final

import numpy as np
import numpy.typing as npt

from hvtrace.abi import HV_RECORD_SIZE, HvExitKind, HvRecord

_CTYPE_TO_NUMPY: Final[dict[type, str]] = {
    ctypes.c_uint8: "<u1",
    ctypes.c_uint16: "<u2",
    ctypes.c_uint32: "<u4",
    ctypes.c_uint64: "<u8",
}


def dtype_of(struct: type[ctypes.LittleEndianStructure]) -> np.dtype[np.void]:
    """A numpy dtype with the exact field offsets and size of a ctypes struct of scalar fields."""
    names, formats, offsets = [], [], []
    for name, ctype in struct._fields_:  # type: ignore[misc]
        names.append(name)
        formats.append(_CTYPE_TO_NUMPY[ctype])
        offsets.append(getattr(struct, name).offset)
    return np.dtype(
        {"names": names, "formats": formats, "offsets": offsets, "itemsize": ctypes.sizeof(struct)}
    )


#: ``struct hv_record`` (64 bytes).
RECORD_DTYPE: Final = dtype_of(HvRecord)
assert RECORD_DTYPE.itemsize == HV_RECORD_SIZE

Records = npt.NDArray[np.void]


def empty() -> Records:
    return np.empty(0, dtype=RECORD_DTYPE)


def from_bytes(data: bytes | bytearray | memoryview) -> Records:
    """Records from raw little-endian bytes (a copy)."""
    return np.frombuffer(data, dtype=RECORD_DTYPE).copy()


def kind_code(name: str) -> int | None:
    """HV_EXIT_* kind number by name (case-insensitive), or None."""
    try:
        return int(HvExitKind[name.upper()])
    except KeyError:
        return None


def time_order(recs: Records) -> Records:
    """Records sorted by TSC, then CPU, then sequence (stable, vectorised)."""
    if len(recs) < 2:
        return recs
    order = np.lexsort((recs["seq"], recs["cpu"], recs["tsc"]))
    return recs[order]
