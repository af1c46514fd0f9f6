"""`hvtrace run`'s wait limit: runs meant to be attached to (storm, hang) have none unless given."""

from __future__ import annotations

import math

import pytest

from hvtrace.cli import build_parser
from hvtrace.commands import run_handler


def session_timeout(*argv: str) -> float | None:
    args = build_parser().parse_args(["run", *argv])
    return run_handler.make_session(args).timeout


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ((), 60.0),  # QEMU's default: the self-test ends by itself
        (("--append", "storm=1"), math.inf),
        (("--append", "hang=1"), math.inf),
        (("--append", "storm=1 storm_iters=100"), 60.0),  # a counted storm ends by itself
        (("--append", "storm=1 storm=0"), 60.0),  # the last word wins, as in the hypervisor
        (("--append", "storm=1", "--timeout", "5"), 5.0),
        (("--timeout", "0"), math.inf),
        (("--backend", "bochs"), 180.0),
        (("--guest", "hv/build/guests/mbtest.elf", "--hv-append", "storm=1"), math.inf),
        (("--guest", "hv/build/guests/mbtest.elf", "--append", "storm=1"), 600.0),  # the guest's cmdline
        (("--guest", "hv/build/guests/mbtest.elf", "--timeout", "30"), 30.0),
    ],
)
def test_timeout_follows_whether_the_run_ends_by_itself(argv: tuple[str, ...], expected: float) -> None:
    assert session_timeout(*argv) == expected


def test_negative_timeout_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["run", "--timeout", "-1"])
    assert e.value.code == 64
    assert "argument --timeout: must be positive (got -1)" in capsys.readouterr().err


def test_other_durations_name_their_own_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["top", "--interval", "0"])
    assert e.value.code == 64
    assert "argument --interval: must be positive (got 0)" in capsys.readouterr().err
