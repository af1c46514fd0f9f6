"""The hypervisor's final status line: ``HVTRACE STATUS code=<n> result=<pass|fail> reason=<token>``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from hvtrace.abi import HV_STATUS_PREFIX, HvStatus, status_name

STATUS_RE = re.compile(rf"^{re.escape(HV_STATUS_PREFIX)} code=(\d+) result=(pass|fail) reason=(\S+)")


@dataclass(frozen=True)
class StatusLine:
    """A parsed final status line."""

    code: int
    result: str
    reason: str
    line: str

    @property
    def passed(self) -> bool:
        return self.result == "pass"

    @property
    def name(self) -> str:
        return status_name(self.code)

    def consistency_problem(self) -> str | None:
        """Why this line contradicts abi.h (code out of range, pass with a nonzero code), or None."""
        if self.code > HvStatus.MAX:
            return f"status code {self.code} is above HV_STATUS_MAX ({int(HvStatus.MAX)})"
        if self.passed != (self.code == HvStatus.PASS):
            return f"result={self.result} contradicts code={self.code}"
        return None


def parse_status_line(line: str) -> StatusLine | None:
    """Parse one console line (trailing CR/LF allowed); None unless it is a status line."""
    text = line.rstrip("\r\n")
    m = STATUS_RE.match(text)
    if m is None:
        return None
    return StatusLine(code=int(m.group(1)), result=m.group(2), reason=m.group(3), line=text)
