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


def test_guest_debug_exit_line_keeps_the_guest_code_apart() -> None:
    st = parse_status_line("HVTRACE STATUS code=0 result=pass reason=guest_debug_exit guest_code=5")
    assert st is not None
    assert (st.code, st.passed, st.reason, st.guest_code) == (0, True, "guest_debug_exit", 5)
    assert st.consistency_problem() is None
    assert st.exit_code == 5  # passed through like a GUEST_EXIT status
    text = st.describe()
    assert "reason=guest_debug_exit code=5" in text
    assert "hypervisor status 5" not in text  # never named as the hypervisor's status
    assert "the hypervisor's own status 0 (PASS)" in text


def test_guest_code_beyond_the_status_range_exits_fail() -> None:
    st = parse_status_line("HVTRACE STATUS code=0 result=pass reason=guest_debug_exit guest_code=300")
    assert st is not None
    assert st.exit_code == HvStatus.FAIL  # 64 and up are the launcher's own codes
    zero = parse_status_line("HVTRACE STATUS code=0 result=pass reason=guest_debug_exit guest_code=0")
    assert zero is not None
    assert zero.exit_code == 0


def test_lines_without_guest_code_have_none() -> None:
    st = parse_status_line("HVTRACE STATUS code=2 result=fail reason=exception")
    assert st is not None
    assert st.guest_code is None
    assert st.exit_code == 2
    assert st.describe() == "hypervisor status 2 (EXCEPTION) result=fail reason=exception"


def test_guest_code_on_another_reason_is_inconsistent() -> None:
    st = parse_status_line("HVTRACE STATUS code=0 result=pass reason=guest_pass guest_code=3")
    assert st is not None
    assert "guest_code goes with reason=guest_debug_exit" in (st.consistency_problem() or "")
    missing = parse_status_line("HVTRACE STATUS code=0 result=pass reason=guest_debug_exit")
    assert missing is not None
    assert missing.consistency_problem() is not None
