"""`hvtrace tui --replay FILE` refuses a file it cannot read before the app starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def tui_replay(path: Path) -> subprocess.CompletedProcess[str]:
    # stdin/stdout are not a terminal: an app that started anyway would hang or print escape codes.
    return subprocess.run(
        [sys.executable, "-m", "hvtrace", "tui", "--replay", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def test_missing_replay_file_is_exit_66_with_one_line(tmp_path: Path) -> None:
    r = tui_replay(tmp_path / "missing.hvt")
    assert r.returncode == 66
    assert r.stderr.strip().splitlines() == [
        f"hvtrace: error: trace file {tmp_path / 'missing.hvt'} does not exist"
    ]
    assert "\x1b[" not in r.stdout  # the app never started


def test_directory_as_replay_file_is_exit_65(tmp_path: Path) -> None:
    r = tui_replay(tmp_path)
    assert r.returncode == 65
    assert "is a directory" in r.stderr
