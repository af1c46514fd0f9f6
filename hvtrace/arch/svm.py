"""AMD-V #VMEXIT codes as records carry them (AMD64 APM Vol. 2, Appendix C, Table C-1).

Records keep the low 16 bits of EXITCODE, so VMEXIT_INVALID (-1) is 0xffff and VMEXIT_BUSY (-2) is
0xfffe (abi.h). One table for the whole project: hvtrace.decode.svm_vmcb, which mirrors hv/svm/names.c.
"""

from __future__ import annotations

from typing import Final

from hvtrace.decode import svm_vmcb

#: Record reason (16 bits) -> name.
EXIT_CODES: Final[dict[int, str]] = {code & 0xFFFF: name for code, name in svm_vmcb.EXIT_CODES.items()}


def exit_code_name(code: int) -> str:
    """Name of a record's SVM exit code, ``UNKNOWN`` when the APM table has none."""
    return EXIT_CODES.get(code & 0xFFFF, "UNKNOWN")
