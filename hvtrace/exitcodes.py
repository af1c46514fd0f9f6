"""Exit codes of the ``hvtrace`` launcher.

Hypervisor status codes (0..63, :class:`hvtrace.abi.HvStatus`) pass through unchanged; the launcher's
own outcomes use the codes above 63 below, so a caller can always tell who failed.
"""

from __future__ import annotations

from enum import IntEnum

from hvtrace.abi import HvStatus, status_name


class ExitCode(IntEnum):
    """Launcher outcomes that are not a hypervisor status."""

    USAGE = 64  # unknown backend, bad option values (EX_USAGE)
    BAD_DATA = 65  # not a trace file, truncated or corrupted header: nothing could be read (EX_DATAERR)
    NO_INPUT = 66  # input missing: no such file, the VM's RAM file is gone (EX_NOINPUT)
    NO_TRACE_HEADER = 67  # guest memory holds no hypervisor discovery header (or no rings yet)
    TOOL_MISSING = 69  # a required host tool is not installed (EX_UNAVAILABLE)
    EMULATOR_FAILED = 70  # emulator refused the configuration or died before the status line
    NO_STATUS = 71  # emulator exited without a final status line (triple fault, reset, ...)
    BUILD_FAILED = 72  # `make -C hv` failed
    CANT_CREATE = 73  # the output file cannot be written (missing directory, a directory, ...) (EX_CANTCREAT)
    IO_ERROR = 74  # reading or writing a file failed otherwise (no space, I/O error) (EX_IOERR)
    ABI_MISMATCH = 76  # the data was written under another ABI / trace-format version (EX_PROTOCOL)
    DAMAGED = 79  # damaged trace file: the result is partial (chunks skipped); one warning line says what
    TIMEOUT = 124  # no final status line within --timeout
    SIGINT = 130  # interrupted by SIGINT (128 + 2)
    SIGTERM = 143  # terminated by SIGTERM (128 + 15)


#: One-line meaning of every launcher exit code, used by `hvtrace --help` and the README.
DESCRIPTIONS: dict[int, str] = {
    ExitCode.USAGE: "usage error (unknown backend, bad option value)",
    ExitCode.BAD_DATA: "input is not a valid trace (wrong file, truncated or corrupted header)",
    ExitCode.NO_INPUT: "input missing (no such file, the VM's RAM file is gone)",
    ExitCode.NO_TRACE_HEADER: "no hypervisor trace header (hv_trace) or no rings in guest memory",
    ExitCode.TOOL_MISSING: "a required tool is missing (message names it and the Debian package)",
    ExitCode.EMULATOR_FAILED: "the emulator refused the configuration or died before the status line",
    ExitCode.NO_STATUS: "the emulator exited without a final status line (e.g. triple fault)",
    ExitCode.BUILD_FAILED: "building the hypervisor image failed",
    ExitCode.CANT_CREATE: "the output file cannot be written (checked before any work starts)",
    ExitCode.IO_ERROR: "reading or writing a file failed (the message names it and why)",
    ExitCode.ABI_MISMATCH: "the data uses an ABI or trace-format version this hvtrace does not read",
    ExitCode.DAMAGED: "the trace file is damaged: the result is partial (the warning says what was skipped)",
    ExitCode.TIMEOUT: "the hypervisor printed no final status within --timeout",
    ExitCode.SIGINT: "interrupted (SIGINT)",
    ExitCode.SIGTERM: "terminated (SIGTERM)",
}


def is_hv_status(code: int) -> bool:
    """True when ``code`` is in the range reserved for hypervisor status codes (0..63)."""
    return 0 <= code <= HvStatus.MAX


def describe(code: int) -> str:
    """Human description of any exit code the launcher can return."""
    if is_hv_status(code):
        return "hypervisor passed" if code == HvStatus.PASS else f"hypervisor status {status_name(code)}"
    return DESCRIPTIONS.get(code, f"unknown exit code {code}")


class LaunchError(Exception):
    """A launcher failure that maps to one exit code; ``str(err)`` is the user-facing message."""

    def __init__(self, code: ExitCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
