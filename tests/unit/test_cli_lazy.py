"""The command line loads what the command it runs needs, and nothing else (issue 15: the interpreter's
start and the imports were most of `hvtrace report`'s time on a file of a few million records).

- Registering the commands imports no implementation: every --help text stays as it was before the
  handlers moved to modules imported when their command runs (tests/data/cli-help.txt, 100 columns;
  after a deliberate change of an option or a text, rewrite it with
  ``.venv/bin/python -m tests.unit.test_cli_lazy``).
- `hvtrace report` of a file whose chunks all carry summaries loads no other command's modules, no
  launcher, no symbol reader (pyelftools), no snapshot decoder, no process pool (multiprocessing) and
  not numpy.ma: the modules `python -X importtime` lists, a count, not a time.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hvtrace import paths
from hvtrace.cli import build_parser, command_names
from hvtrace.trace.tracefile import TraceFile
from hvtrace.trace.writer import TraceWriter
from tests.unit.test_chunk_summary import odd_records

GOLDEN = paths.repo_root() / "tests" / "data" / "cli-help.txt"
COLUMNS = "100"  # argparse wraps to the terminal's width: the golden texts are at this one


def help_texts() -> str:
    """`hvtrace --help` and every command's --help, each after a ``=== hvtrace NAME --help`` line."""
    parser = build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    parts = ["=== hvtrace --help\n" + parser.format_help()]
    parts += [f"=== hvtrace {n} --help\n" + subs.choices[n].format_help() for n in command_names(parser)]
    return "".join(parts)


def sections(text: str) -> dict[str, str]:
    """The help texts of :func:`help_texts` by command line (``hvtrace report``), in their order."""
    parts = re.split(r"^=== (hvtrace.*) --help\n", text, flags=re.MULTILINE)
    assert parts[0] == ""
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_every_help_text_is_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", COLUMNS)
    expected, got = sections(GOLDEN.read_text()), sections(help_texts())
    assert list(got) == list(expected)  # the same commands, in the same order
    for title, text in got.items():
        assert text == expected[title], f"`{title} --help` changed"


def test_the_cli_prints_the_same_help() -> None:
    """Through `python -m hvtrace` too (the handler modules are imported only when a command runs)."""
    env = {"COLUMNS": COLUMNS, "PATH": "/usr/bin:/bin"}
    expected = sections(GOLDEN.read_text())
    for argv in (["--help"], ["report", "--help"], ["gdb", "--help"]):
        done = subprocess.run(
            [sys.executable, "-m", "hvtrace", *argv], capture_output=True, text=True, check=True, env=env
        )
        assert done.stdout == expected[" ".join(["hvtrace", *argv[:-1]])]


def loaded_modules(argv: list[str]) -> tuple[set[str], str]:
    """The modules `python -X importtime -m hvtrace ARGV` imports (beyond the interpreter's own start)
    and its stdout; the command must succeed."""
    argv = [sys.executable, "-X", "importtime", "-m", "hvtrace", *argv]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [ln.split("|")[-1].strip() for ln in done.stderr.splitlines() if ln.startswith("import time:")]
    return {name for name in lines if name != "cumulative" and not name.startswith("[")}, done.stdout


@pytest.fixture(scope="module", params=[1, 2], ids=["vmx", "svm"])
def summarised(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("lazy") / "summarised.hvt"
    meta = {"vendor": request.param, "cpus": 2, "tsc_hz": 2.5e9}
    with TraceWriter(path, meta, chunk_records=1000) as w:
        w.add(np.concatenate([odd_records(3000, cpu=c, seed=c) for c in range(2)]))
    return path


#: Loaded by no `hvtrace report` of a summarised file (package prefixes, and modules by name).
NOT_FOR_REPORT = (
    "elftools", "multiprocessing", "numpy.ma", "pyarrow", "duckdb", "perfetto", "textual", "pygdbmi",
    "hvtrace.symbols", "hvtrace.kaslr", "hvtrace.trace.report_symbols", "hvtrace.trace.capture",
    "hvtrace.trace.export", "hvtrace.doctor", "hvtrace.gdb_launch", "hvtrace.elfcore", "hvtrace.image",
    "hvtrace.interrupts", "hvtrace.commands.run_handler", "hvtrace.commands.gdb_handler",
    "hvtrace.commands.doctor_handler", "hvtrace.commands.image_handler",
    "hvtrace.commands.trace_handlers", "hvtrace.launch.session", "hvtrace.launch.guest",
    "hvtrace.launch.qemu", "hvtrace.launch.bochs", "hvtrace.launch.procs",
    "hvtrace.decode.vmcs_view", "hvtrace.decode.vmcb_view", "hvtrace.decode.stage2",
    "hvtrace.decode.vmx_qualifications", "hvtrace.decode.svm_vmcb", "hvtrace.decode.vmcs_fields",
)  # fmt: skip


@pytest.mark.parametrize("extra", [[], ["--json"]], ids=["text", "json"])
def test_report_of_a_summarised_file_loads_only_the_report(summarised: Path, extra: list[str]) -> None:
    tf = TraceFile.open(summarised)
    assert all(tf.has_summary(i) for i in range(len(tf.index)) if tf.index["count"][i])  # merged, not decoded
    loaded, out = loaded_modules(["report", *extra, str(summarised)])
    assert "6000" in out  # the records, reported
    # what it does load, seen the same way: the report, its reason names and numpy (the index, the merge)
    assert {"hvtrace.trace.report", "hvtrace.decode.vendor", "numpy", "zstandard"} <= loaded
    unwanted = sorted(m for m in loaded if any(m == p or m.startswith(p + ".") for p in NOT_FOR_REPORT))
    assert unwanted == []


def test_symbols_still_load_with_the_option(summarised: Path, tmp_path: Path) -> None:
    """The modules left out above are imported when the report needs them: --symbols (System.map)."""
    system_map = tmp_path / "System.map"
    system_map.write_text("ffffffff81000000 T _stext\nffffffff81000100 T native_cpuid\n")
    loaded, out = loaded_modules(["report", "--symbols", str(system_map), str(summarised)])
    assert {"hvtrace.symbols", "hvtrace.trace.report_symbols"} <= loaded
    assert "elftools" not in loaded  # a System.map needs no ELF reader
    assert "top guest locations per reason" in out


if __name__ == "__main__":  # rewrite the golden help texts (after a deliberate change)
    import os

    os.environ["COLUMNS"] = COLUMNS
    GOLDEN.write_text(help_texts())
    print(f"wrote {GOLDEN}")
