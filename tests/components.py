"""What a test does when a component it needs (a tool, the Linux guest assets) is missing: elsewhere a
skip that names it; in CI (CI=true) a failure, so coverage cannot vanish from a green run."""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def missing(what: str) -> NoReturn:
    if in_ci():
        pytest.fail(f"{what} (CI=true: a missing component fails the run)", pytrace=False)
    pytest.skip(what)


def require(tool: str, why: str = "") -> str:
    """The tool's path; a skip (a failure in CI) when it is not installed."""
    path = shutil.which(tool)
    if path is None:
        missing(f"needs {tool}" + (f" ({why})" if why else ""))
    return path
