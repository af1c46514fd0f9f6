"""A real QEMU capture (2 CPUs, CPUID storm) is written with chunk summaries (format 3), and
`hvtrace report` prints the same from its summaries as from its decoded records (`--no-summaries`),
with and without filters; report, query and export still agree on counts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hvtrace.cli import main
from hvtrace.trace import report_scan
from hvtrace.trace.report_select import Selection
from hvtrace.trace.tracefile import TraceFile
from tests.integration.conftest import RunFn, storm_capture
from tests.unit.test_counts_agree import check_counts_agree

pytestmark = [pytest.mark.slow, pytest.mark.qemu]

FILTERS = [
    [],
    ["--cpu", "1", "--reason", "CPUID"],
    ["--since", "10000r", "--until", "50000r", "--top", "3"],
    ["--since", "0.05s", "--sort", "time"],
]


def test_a_live_capture_reports_the_same_from_its_summaries(
    hvtrace_run: RunFn, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "live.hvt"
    storm_capture(hvtrace_run, out, "--count", "60000")
    tf = TraceFile.open(out)
    assert tf.meta["format_version"] == 3
    assert tf.meta.get("tsc_hz")
    rows = [i for i in range(len(tf.index)) if tf.index["count"][i]]
    assert all(tf.has_summary(i) for i in rows)
    whole = [i for i in rows if report_scan.summarised(tf, i, Selection.of(tf), True)]
    assert whole == rows
    assert tf.record_count >= 60000
    for argv in FILTERS:
        got: list[Any] = []
        for extra in ([], ["--no-summaries"]):
            assert main(["report", *argv, *extra, str(out)]) == 0
            got.append(capsys.readouterr().out)
            assert main(["report", "--json", *argv, *extra, str(out)]) == 0
            got.append(json.loads(capsys.readouterr().out))
        assert got[1]["records"] > 0, argv
        assert got[0] == got[2], argv
        assert got[1] == got[3], argv
    check_counts_agree(capsys, out, tmp_path)
