"""The argparse layer of the hv-* commands (gdbext.options): every error is one HvError line in the
commands' own wording, options and positional words mix in any order."""

from __future__ import annotations

import pytest

from gdbext import options
from gdbext.model import HvError


def _parser() -> options.OptionParser:
    p = options.OptionParser("hv-test")
    p.add_argument("cpu", nargs="*")
    p.add_argument("--exit", dest="areas", action="append_const", const="exit")
    p.add_argument("-n", type=options.number("record count"), default=10)
    return p


def test_options_and_words_mix_in_any_order() -> None:
    ns = _parser().parse(["--exit", "1", "-n", "0x20"])
    assert (ns.cpu, ns.areas, ns.n) == (["1"], ["exit"], 0x20)
    assert _parser().parse([]).n == 10


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-n"], "option -n needs a value"),
        (["-n", "x"], "bad record count 'x' (expected a number"),
        (["-n", "-5"], "bad record count '-5' (must not be negative)"),
        (["--frob"], "unknown option '--frob' (options: --exit, -n)"),
    ],
)
def test_errors_are_one_line_in_the_commands_wording(argv: list[str], message: str) -> None:
    with pytest.raises(HvError) as e:
        _parser().parse(argv)
    assert str(e.value).startswith(message)


def test_a_command_without_options_takes_no_arguments() -> None:
    with pytest.raises(HvError, match=r"takes no arguments \(got 'a b'\)"):
        options.OptionParser("hv-cpus").parse(["a", "b"])
    assert vars(options.OptionParser("hv-cpus").parse([])) == {}
