"""A fresh live capture (QEMU, 2 CPUs, storm guest): report, query and every export agree on counts per
reason and per CPU, and the README's example queries run on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import RunFn, storm_capture
from tests.unit.test_counts_agree import check_counts_agree
from tests.unit.test_readme_queries import check_readme_queries

pytestmark = [pytest.mark.slow, pytest.mark.qemu]


def test_live_capture_counts_agree_and_readme_queries_run(
    hvtrace_run: RunFn, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "live.hvt"
    storm_capture(hvtrace_run, out, "--count", "3000")
    check_counts_agree(capsys, out, tmp_path)
    check_readme_queries(capsys, out)
