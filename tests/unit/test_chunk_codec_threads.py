"""Chunks decode correctly from several threads at once (`hvtrace query` builds its Arrow batches on two):
a zstd decompressor shared between threads corrupted payloads now and then ("Data corruption detected")."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from hvtrace.trace import chunk_codec
from hvtrace.trace.fileformat import FLAG_ZSTD


def test_concurrent_zstd_decodes_are_exact() -> None:
    rng = np.random.default_rng(7)
    # compressible but not trivial: slowly varying 64-bit fields, as shuffled record planes are
    payloads = [np.cumsum(rng.integers(0, 4, 1 << 17)).astype("<u8").tobytes() for _ in range(8)]
    encoded = [chunk_codec.encode(p, FLAG_ZSTD) for p in payloads]

    def decode_all(k: int) -> bool:
        return all(
            chunk_codec.decode(encoded[(k + i) % 8], FLAG_ZSTD, len(payloads[(k + i) % 8]))
            == payloads[(k + i) % 8]
            for i in range(40)
        )

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(decode_all, range(8)))
