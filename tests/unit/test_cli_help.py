"""The CLI's help: every command listed, every option explained, each command's own exit codes."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from hvtrace.cli import build_parser, command_names, main
from hvtrace.commands import trace_handlers
from hvtrace.commands.command_texts import DESCRIPTIONS, SUMMARIES
from hvtrace.commands.exit_tables import CODES
from hvtrace.trace.export_formats import PERFETTO_JSON_MAX

COMMANDS = command_names(build_parser())


def subparser(name: str) -> argparse.ArgumentParser:
    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[name]  # type: ignore[no-any-return]
    raise AssertionError("no subcommands")


def test_bare_hvtrace_names_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 64
    last = capsys.readouterr().err.strip().splitlines()[-1]
    for name in COMMANDS:
        assert name in last
    assert {"run", "doctor", "capture", "report", "export", "gdb", "core-from-dump", "tui"} <= set(COMMANDS)


@pytest.mark.parametrize("name", COMMANDS)
def test_every_option_has_help(name: str) -> None:
    missing = [
        a.option_strings
        for a in subparser(name)._actions
        if a.option_strings and not a.help and a.help != argparse.SUPPRESS
    ]
    assert missing == []


@pytest.mark.parametrize("name", COMMANDS)
def test_command_help_lists_its_own_exit_codes(name: str) -> None:
    text = subparser(name).format_help()
    table = text[text.index(f"exit codes of `hvtrace {name}`:") :]
    listed = {int(line.split()[0]) for line in table.splitlines()[2:]}
    assert set(CODES[name]) <= listed
    others = set().union(*CODES.values()) - set(CODES[name]) - {64, 74, 130, 143}
    assert listed.isdisjoint(others), f"{name} lists codes of other commands: {listed & others}"


@pytest.mark.parametrize("name", COMMANDS)
def test_help_shows_no_escaped_percent(name: str) -> None:
    """argparse formats help with %: a literal "%%" left in a text shows as it is written."""
    assert "%%" not in subparser(name).format_help()


def test_top_level_table_is_not_titled_for_one_command() -> None:
    text = build_parser().format_help()
    assert "exit codes of `hvtrace run`" not in text
    assert "exit codes (each command's --help lists its own):" in text
    assert " 124  " in text  # run's timeout
    assert " 73  " in text  # capture/export's output check


def test_doctor_mentions_no_later_work() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "hvtrace", "doctor"], capture_output=True, text=True, check=False
    ).stdout
    assert "gdb" in out
    assert "later" not in out.lower()


def test_progress_line_has_no_carriage_return_off_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    trace_handlers._progress("capture: 10 records")
    trace_handlers._progress("capture: 20 records")
    err = capsys.readouterr().err
    assert "\r" not in err
    assert "\\r" not in err
    assert err.splitlines() == ["capture: 10 records", "capture: 20 records"]


def test_command_texts_name_exactly_the_commands() -> None:
    # A command added without its texts fails in add_command; a removed command must not leave stale ones.
    assert list(SUMMARIES) == COMMANDS  # the table reads in the order of `hvtrace --help`
    assert set(DESCRIPTIONS) <= set(COMMANDS)
    assert set(CODES) == set(COMMANDS)


def test_export_description_names_the_json_limit() -> None:
    description = subparser("export").description or ""
    assert f"above {PERFETTO_JSON_MAX} records" in description
    assert "{" not in description


def test_the_parser_loads_no_heavy_module() -> None:
    """`hvtrace --help` and any command's option parsing import none of what the handlers need (numpy,
    pyarrow, DuckDB, Textual, pyelftools, perfetto's protos): handlers are imported when they run."""
    heavy = ("numpy", "pyarrow", "duckdb", "textual", "elftools", "perfetto", "zstandard", "pygdbmi")
    code = (
        "import sys\n"
        "from hvtrace.cli import build_parser\n"
        "build_parser().parse_args(['report', 'x.hvt'])\n"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout
