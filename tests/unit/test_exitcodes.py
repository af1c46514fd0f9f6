from __future__ import annotations

import signal

from hvtrace.abi import HvStatus
from hvtrace.exitcodes import DESCRIPTIONS, ExitCode, describe, is_hv_status
from hvtrace.interrupts import Interrupted


def test_launcher_codes_are_distinct_and_outside_the_status_range() -> None:
    values = [int(c) for c in ExitCode]
    assert len(values) == len(set(values))
    assert all(not is_hv_status(v) for v in values)
    assert {int(c) for c in ExitCode} == {64, 65, 66, 67, 69, 70, 71, 72, 73, 74, 76, 79, 124, 130, 143}


def test_every_launcher_code_is_described() -> None:
    assert set(DESCRIPTIONS) == set(ExitCode)


def test_hypervisor_statuses_pass_through() -> None:
    for st in HvStatus:
        assert is_hv_status(int(st))
    assert describe(0) == "hypervisor passed"
    assert describe(int(HvStatus.EXCEPTION)) == "hypervisor status EXCEPTION"
    assert describe(ExitCode.TIMEOUT).startswith("the hypervisor printed no final status")


def test_signal_exit_codes_follow_the_shell_convention() -> None:
    assert Interrupted(signal.SIGINT).exit_code == ExitCode.SIGINT
    assert Interrupted(signal.SIGTERM).exit_code == ExitCode.SIGTERM
