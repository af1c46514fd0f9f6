"""The hypervisor's final status line: ``HVTRACE STATUS code=<n> result=<pass|fail> reason=<token>``,
with `` guest_code=<n>`` after it when a loaded guest ended the run through isa-debug-exit
(``reason=guest_debug_exit``): ``code`` stays the hypervisor's own status, the guest's value is apart."""

from __future__ import annotations

import re
from dataclasses import dataclass

from hvtrace.abi import HV_STATUS_PREFIX, HvStatus, status_name

STATUS_RE = re.compile(
    rf"^{re.escape(HV_STATUS_PREFIX)} code=(\d+) result=(pass|fail) reason=(\S+)(?: guest_code=(\d+))?"
)

#: The reason of a run the guest ended by writing the isa-debug-exit port (its value is ``guest_code``).
GUEST_DEBUG_EXIT = "guest_debug_exit"


@dataclass(frozen=True)
class StatusLine:
    """A parsed final status line."""

    code: int
    result: str
    reason: str
    line: str
    #: The loaded guest's own exit code (isa-debug-exit value), never the hypervisor's status.
    guest_code: int | None = None

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
        if (self.guest_code is not None) != (self.reason == GUEST_DEBUG_EXIT):
            return f"guest_code goes with reason={GUEST_DEBUG_EXIT} only (reason={self.reason})"
        return None

    @property
    def exit_code(self) -> int:
        """What `hvtrace run` exits with: the guest's code when the guest ended the run through
        isa-debug-exit (as a GUEST_EXIT status would), else the hypervisor's; a value beyond the
        status range (0..63) gives HV_STATUS_FAIL, the launcher's own codes start at 64."""
        code = self.guest_code if self.guest_code is not None else self.code
        return code if code <= HvStatus.MAX else int(HvStatus.FAIL)

    def describe(self) -> str:
        """One line for the user; a guest's code is never named as a hypervisor status."""
        if self.guest_code is None:
            return f"hypervisor status {self.code} ({self.name}) result={self.result} reason={self.reason}"
        own = f"the hypervisor's own status {self.code} ({self.name})"
        return f"guest exit through isa-debug-exit: reason={self.reason} code={self.guest_code} ({own})"


def parse_status_line(line: str) -> StatusLine | None:
    """Parse one console line (trailing CR/LF allowed); None unless it is a status line."""
    text = line.rstrip("\r\n")
    m = STATUS_RE.match(text)
    if m is None:
        return None
    guest = m.group(4)
    return StatusLine(
        code=int(m.group(1)),
        result=m.group(2),
        reason=m.group(3),
        line=text,
        guest_code=int(guest) if guest is not None else None,
    )
