"""A fixed-size log-scale histogram of handling times (TSC ticks), for percentiles in bounded memory.

HDR-histogram style: values below 64 ticks have a bucket each (exact); above, every power of two is cut
into 32 equal sub-buckets, so a bucket is at most 1/32 of its values wide. A percentile is read as its
bucket's midpoint, clamped to the exact min and max: within 1/64 (1.6 %) of the true value. 1,920
buckets cover every u64 (bucketing goes through float64: exact for ticks below 2^53, about 40 days at
2.5 GHz); merging two histograms is adding them.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np

SUB_BITS: Final = 5  # 32 sub-buckets per power of two
_SUB: Final = 1 << SUB_BITS
_EXACT: Final = 2 * _SUB  # values below are their own bucket
BUCKETS: Final = _EXACT + (64 - SUB_BITS - 1) * _SUB

Hist = np.ndarray[Any, np.dtype[np.int64]]


def empty() -> Hist:
    return np.zeros(BUCKETS, dtype=np.int64)


def bucket_of(values: np.ndarray[Any, Any]) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Each value's bucket number (vectorised; values are ticks, far below 2^53)."""
    mant, exp = np.frexp(values.astype(np.float64))  # value = mant * 2^exp, mant in [0.5, 1)
    top = (mant * (2 * _SUB)).astype(np.int64)  # the value's 6 leading bits: 32..63
    big = _EXACT + (exp.astype(np.int64) - SUB_BITS - 2) * _SUB + (top - _SUB)
    return np.where(values < _EXACT, values.astype(np.int64), big)


def bucket_mid(b: int) -> float:
    """The middle of bucket ``b``'s range of values."""
    if b < _EXACT:
        return float(b)
    octave, sub = divmod(b - _EXACT, _SUB)
    shift = octave + 1
    low = (sub + _SUB) << shift
    return low + ((1 << shift) - 1) / 2


def percentile(hist: Hist, q: float, lo: int, hi: int) -> float | None:
    """The q-th percentile (nearest rank) of the values counted in ``hist``; None when it is empty."""
    total = int(hist.sum())
    if not total:
        return None
    rank = max(1, int(np.ceil(q / 100.0 * total)))
    b = int(np.searchsorted(np.cumsum(hist), rank))
    return min(max(bucket_mid(b), float(lo)), float(hi))
