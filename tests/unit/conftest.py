"""Fixtures of the unit tests that drive host-compiled hypervisor code (tests/native)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.unit.mmio_native import MmioDriver, driver


@pytest.fixture(scope="module")
def mmio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MmioDriver]:
    """The MMIO decoder/emulator driver (mmio_decode.c, mmio_emul.c built for the host), one per module."""
    yield from driver(tmp_path_factory)
