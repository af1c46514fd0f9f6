"""The guest assets' errors: each a LaunchError with the exit code it maps to."""

from __future__ import annotations

from hvtrace.exitcodes import ExitCode, LaunchError


class GuestAssetError(LaunchError):
    """The packages were fetched but do not hold what we expect, or another asset step failed."""

    def __init__(self, message: str, code: ExitCode = ExitCode.BAD_DATA) -> None:
        super().__init__(code, message)


class AssetsUnavailable(GuestAssetError):
    """apt could not resolve or download a package (no network, no package lists, not Debian)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, ExitCode.TOOL_MISSING)


class GuestBootError(LaunchError):
    """The bare-QEMU boot did not reach the marker line (timeout, QEMU failed, guest powered off)."""
