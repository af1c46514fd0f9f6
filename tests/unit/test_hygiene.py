"""Build hygiene as tests: the Python is ruff-clean and type-checks, the hypervisor builds with -Werror."""

from __future__ import annotations

import subprocess
import sys

from hvtrace import paths

PY_DIRS = ["hvtrace", "tests", "tui", "gdbext"]


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, check=False, cwd=paths.repo_root(), capture_output=True, text=True, timeout=300
    )


def test_ruff_check_is_clean() -> None:
    r = run(sys.executable, "-m", "ruff", "check", *PY_DIRS)
    assert r.returncode == 0, r.stdout + r.stderr


def test_ruff_format_is_clean() -> None:
    r = run(sys.executable, "-m", "ruff", "format", "--check", *PY_DIRS)
    assert r.returncode == 0, r.stdout + r.stderr


def test_mypy_is_clean() -> None:
    r = run(sys.executable, "-m", "mypy")
    assert r.returncode == 0, r.stdout + r.stderr


def test_hypervisor_builds_with_werror() -> None:
    makefile = (paths.repo_root() / "hv" / "Makefile").read_text()
    assert "-Wall -Wextra -Werror" in makefile
    r = run("make", "-s", "-C", "hv")
    assert r.returncode == 0, r.stdout + r.stderr


MAX_PYTHON_LINES = 500  # issue 14: small files with one job


def test_no_python_file_is_over_500_lines() -> None:
    root = paths.repo_root()
    long = {
        str(f.relative_to(root)): n
        for d in ("hvtrace", "tui", "gdbext", "benchmarks", "tests")
        for f in (root / d).rglob("*.py")
        if (n := len(f.read_text().splitlines())) > MAX_PYTHON_LINES
    }
    assert long == {}, f"split these files: {long}"
