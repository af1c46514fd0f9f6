"""The one exception type of the trace pipeline: a user-facing message and the exit code it maps to."""

from __future__ import annotations

from hvtrace.exitcodes import ExitCode


class TraceError(Exception):
    """A failure a user must see as one line; ``code`` is what the CLI exits with."""

    def __init__(self, code: ExitCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
