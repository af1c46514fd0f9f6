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
EXACT: Final = 2 * _SUB  # values below are their own bucket
BUCKETS: Final = EXACT + (64 - SUB_BITS - 1) * _SUB
_MANT_SHIFT: Final = 52 - SUB_BITS  # float64: 52 mantissa bits; keep the top SUB_BITS of them
# bucket = (biased exponent e) * 32 + sub - _BIAS; a value in [64, 128) has e = 1023 + 6 and bucket 64 + sub
_BIAS: Final = (1023 + 6) * _SUB - EXACT

Hist = np.ndarray[Any, np.dtype[np.int64]]


def empty() -> Hist:
    return np.zeros(BUCKETS, dtype=np.int64)


def bucket_of(
    values: np.ndarray[Any, Any], as_float: np.ndarray[Any, np.dtype[np.float64]] | None = None
) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Each value's bucket number (vectorised; values are ticks, far below 2^53). ``as_float``: the
    values as float64 when the caller has them already (the report sums them as such).

    Read from the float64's bits (IEEE 754 binary64: 11-bit biased exponent, then the mantissa's top
    bits): ``bits >> 47`` is exponent * 32 + the 5 bits after the leading one, i.e. the octave and its
    sub-bucket, with no frexp and no per-value branching."""
    f = values.astype(np.float64) if as_float is None else as_float
    out: np.ndarray[Any, np.dtype[np.int64]] = (f.view(np.int64) >> _MANT_SHIFT) - _BIAS
    small = np.flatnonzero(values < EXACT)  # exact buckets (rare for handling times)
    if len(small):
        out[small] = values[small]
    return out


def bucket_mid(b: int) -> float:
    """The middle of bucket ``b``'s range of values."""
    if b < EXACT:
        return float(b)
    octave, sub = divmod(b - EXACT, _SUB)
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
