"""`hvtrace capture ... 2>&1 | cat`: off a terminal the progress is plain lines, never a literal or real
carriage return."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import RunFn

pytestmark = [pytest.mark.slow, pytest.mark.qemu]


def test_capture_progress_off_a_terminal_is_one_line_per_update(hvtrace_run: RunFn, tmp_path: Path) -> None:
    out = tmp_path / "p.hvt"
    r = hvtrace_run("capture", "--backend", "qemu", "--append", "storm=1", "--duration", "2", "-o", str(out))
    assert r.returncode == 0, r.describe()
    assert "\r" not in r.stderr
    assert "\\r" not in r.stderr
    progress = [line for line in r.stderr.splitlines() if line.startswith("capture: ")]
    assert len(progress) >= 2, r.stderr  # every half second, and the final count
    assert all(" records, " in line and " lost " in line for line in progress)
