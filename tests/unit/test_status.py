from __future__ import annotations

import pytest

from hvtrace.abi import HvStatus
from hvtrace.status import parse_status_line


def test_parses_pass_line() -> None:
    st = parse_status_line("HVTRACE STATUS code=0 result=pass reason=ok\r\n")
    assert st is not None
    assert (st.code, st.result, st.reason, st.passed) == (0, "pass", "ok", True)
    assert st.name == "PASS"
    assert st.line == "HVTRACE STATUS code=0 result=pass reason=ok"
    assert st.consistency_problem() is None


def test_parses_failure_line() -> None:
    st = parse_status_line("HVTRACE STATUS code=2 result=fail reason=exception")
    assert st is not None
    assert st.code == HvStatus.EXCEPTION
    assert not st.passed
    assert st.name == "EXCEPTION"


@pytest.mark.parametrize(
    "line",
    [
        "",
        "hvtrace hypervisor (ABI 1) starting",
        " HVTRACE STATUS code=0 result=pass reason=ok",  # must start the line
        "HVTRACE STATUS code=x result=pass reason=ok",
        "HVTRACE STATUS code=0 result=maybe reason=ok",
        "HVTRACE STATUS code=0 result=pass",
        "HVTRACE STATUS code=0 result=pass reason=",
        "printk: HVTRACE STATUS code=0 result=pass reason=ok",
    ],
)
def test_rejects_other_lines(line: str) -> None:
    assert parse_status_line(line) is None


def test_unknown_code_and_contradictions_are_reported() -> None:
    st = parse_status_line("HVTRACE STATUS code=42 result=fail reason=new_thing")
    assert st is not None
    assert st.name == "UNKNOWN(42)"
    assert st.consistency_problem() is None
    bad = parse_status_line("HVTRACE STATUS code=3 result=pass reason=ok")
    assert bad is not None
    assert "contradicts" in (bad.consistency_problem() or "")
    big = parse_status_line("HVTRACE STATUS code=99 result=fail reason=x")
    assert big is not None
    assert "above HV_STATUS_MAX" in (big.consistency_problem() or "")
