"""Fuzzing discovery's header validation and the ring-header validation (geometry from bytes)."""

from __future__ import annotations

import ctypes
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hvtrace.abi import HvDiscovery, HvRing
from hvtrace.exitcodes import ExitCode
from hvtrace.trace.discovery import HEADER_SIZE, parse_header
from hvtrace.trace.errors import TraceError
from hvtrace.trace.mutate import discovery_bytes, fuzz_input, ring_bytes, run_discovery, run_ring
from hvtrace.trace.reader import parse_ring_header

FUZZ = settings(derandomize=True, max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
DISC = [discovery_bytes(), discovery_bytes(1, 16), discovery_bytes(64, 1 << 20)]
RINGS = [ring_bytes(), ring_bytes(63, 1 << 24, 1 << 40)]


def contract(run: object, data: bytes) -> None:
    err: TraceError | None = None
    try:
        run(data)  # type: ignore[operator]
    except TraceError as e:
        err = e
    if err is not None:
        assert "\n" not in err.message
        assert err.message.startswith("fuzz")


def test_seeds_are_valid() -> None:
    for d in DISC:
        assert parse_header(d, 0x100000, "scan", "t").rings
    for r in RINGS:
        parse_ring_header(r, 0x1000, "t")


@FUZZ
@given(st.binary(min_size=HEADER_SIZE - 8, max_size=HEADER_SIZE + 8))
def test_random_discovery_headers(data: bytes) -> None:
    contract(run_discovery, data)


@settings(FUZZ, max_examples=800)
@given(st.integers(0, 2**32))
def test_mutated_discovery_headers(seed: int) -> None:
    contract(run_discovery, fuzz_input(random.Random(seed), DISC, None))


@settings(FUZZ, max_examples=800)
@given(st.integers(0, 2**32))
def test_mutated_ring_headers(seed: int) -> None:
    contract(run_ring, fuzz_input(random.Random(seed), RINGS, None))


def _disc(**fields: int) -> bytes:
    h = HvDiscovery.from_buffer_copy(discovery_bytes())
    for k, v in fields.items():
        if k[4:].isdigit():
            h.ring[int(k[4:])] = v
        else:
            setattr(h, k, v)
    return bytes(h)


RING0 = HvDiscovery.from_buffer_copy(discovery_bytes()).ring[0]


@pytest.mark.parametrize(
    ("fields", "text"),
    [
        ({"ring_capacity": 1000}, "bad ring capacity 1000"),
        ({"ring_capacity": 0, "ring1": 0x100000 + 4096 * 0}, "rings overlap"),  # no capacity yet: headers
        ({"ring_capacity": 1 << 30}, "bad ring capacity"),
        ({"ring1": RING0 + 0x1000}, "rings overlap"),
        ({"ring1": 0x100000}, "rings overlap"),  # a ring on top of the header itself
        ({"ring1": RING0 + 0x10008}, "bad ring address"),
        ({"ring1": (1 << 64) - 4096}, "bad ring address"),
    ],
)
def test_ring_geometry_is_checked_before_any_ring_is_read(fields: dict[str, int], text: str) -> None:
    """Before: a header with a ring capacity of 1000, overlapping rings or a ring at 2^64-4096 was
    accepted, and the reader then read (or wrote ring tails into) memory that is no ring."""
    with pytest.raises(TraceError) as e:
        parse_header(_disc(**fields), 0x100000, "scan", "fuzz")
    assert e.value.code == ExitCode.BAD_DATA
    assert text in e.value.message


def test_rings_registered_before_their_capacity_is_set_are_accepted() -> None:
    assert parse_header(_disc(ring_capacity=0), 0x100000, "scan", "t").rings


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (ring_bytes()[:40], "truncated ring header"),
        (bytes(HvRing(capacity=1024, policy=7)), "unknown policy 7"),
        (bytes(HvRing(capacity=1024, cpu=64)), "bad CPU 64"),
        (bytes(HvRing(capacity=3)), "bad capacity 3"),
    ],
)
def test_ring_header_checks(data: bytes, text: str) -> None:
    with pytest.raises(TraceError, match=text):
        parse_ring_header(data, 0x1000, "fuzz")
    assert ctypes.sizeof(HvRing) == 192
