"""`hvtrace report` from chunk summaries equals the report from decoded records (`--no-summaries`),
number for number, under every filter: --cpu, --reason (kind and native names), --since/--until in
records and in seconds (bounds that cut chunks), --top, --sort; in one process and over the pool.

Files: synthetic 3-CPU records (every handling-time and drill-down case of test_chunk_summary, TSCs
overlapping across CPUs) and the real QEMU storm capture (tests/data), rewritten into small chunks so
bounds fall inside chunks and most chunks are still whole.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hvtrace import paths
from hvtrace.cli import main
from hvtrace.trace import report_scan
from hvtrace.trace.report import build_report, format_text
from hvtrace.trace.report_args import Bound, bound
from hvtrace.trace.report_select import Selection
from hvtrace.trace.tracefile import TraceFile
from hvtrace.trace.writer import TraceWriter
from tests.unit.test_chunk_summary import odd_records

STORM = paths.repo_root() / "tests" / "data" / "trace-v2-qemu-storm-2cpu.hvt"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    tmp = tmp_path_factory.mktemp("summaries")
    synthetic = tmp / "synthetic.hvt"
    parts = [odd_records(6000, cpu=c, seed=10 + c) for c in range(3)]
    meta = {"vendor": 1, "vendor_name": "VMX", "cpus": 3, "tsc_hz": 2.5e9}
    with TraceWriter(synthetic, meta, chunk_records=500) as w:
        w.note_lost(1, 5)  # a loss marker chunk on the way
        for i in range(0, 6000, 1000):  # interleaved per CPU, as a capture delivers them
            w.add(np.concatenate([p[i : i + 1000] for p in parts]))
    storm = tmp / "storm.hvt"
    tf = TraceFile.open(STORM)
    with TraceWriter(storm, dict(tf.meta), chunk_records=300) as w:
        w.add(tf.records())
    return [synthetic, storm]


FILTERS: list[dict[str, object]] = [
    {},
    {"cpus": {1}},
    {"cpus": {0, 2}, "reasons": ["CPUID", "IO"]},
    {"reasons": ["MSR_READ"]},
    {"reasons": ["STAGE2_FAULT", "CR_ACCESS", "HLT"]},
    {"since": bound("1000r"), "until": bound("9000r")},
    {"since": bound("4321r")},
    {"until": bound("4000r"), "cpus": {1}},
    {"since": bound("0.0002s"), "until": bound("0.0011s")},
    {"since": bound("0.0005s"), "reasons": ["CPUID"]},
]


Report = dict[str, Any]


def reports(tf: TraceFile, sel: Selection, top: int | None, sort: str, jobs: int) -> tuple[Report, Report]:
    a = build_report(tf, sel, top=top, sort=sort, jobs=jobs)
    b = build_report(tf, sel, top=top, sort=sort, jobs=jobs, summaries=False)
    return a, b


@pytest.mark.parametrize("which", [0, 1], ids=["synthetic", "storm"])
@pytest.mark.parametrize("filt", FILTERS, ids=[str(i) for i in range(len(FILTERS))])
@pytest.mark.parametrize(("top", "sort"), [(None, "count"), (2, "time")], ids=["all", "top2-time"])
def test_summaries_and_decoding_give_the_same_report(
    files: list[Path], which: int, filt: dict[str, object], top: int | None, sort: str
) -> None:
    tf = TraceFile.open(files[which])
    if which == 1:  # the storm spans 0.45 s, the synthetic file 6 ms
        filt = {
            k: Bound(v.value * 70, "s") if isinstance(v, Bound) and v.unit == "s" else v
            for k, v in filt.items()
        }
    sel = Selection.of(tf, **filt)  # type: ignore[arg-type]
    chunks = sel.chunks(tf)
    whole = [i for i in chunks if report_scan.summarised(tf, i, sel, True)]
    if filt.get("since") or filt.get("until"):
        assert len(whole) < len(chunks), "a bound cuts a chunk: decoded"
    else:
        assert whole == chunks, "every chunk selected whole is merged from its summary"
    a, b = reports(tf, sel, top, sort, 1)
    assert a["records"] > 0
    assert a == b  # every number of the JSON report, floats bit for bit
    assert format_text(a) == format_text(b)


def test_the_pool_merges_summaries_the_same(files: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report_scan, "POOL_MIN_CHUNKS", 0)  # the files are small: force the workers
    tf = TraceFile.open(files[0])
    for filt in (FILTERS[0], FILTERS[2], FILTERS[5]):
        sel = Selection.of(tf, **filt)  # type: ignore[arg-type]
        a, b = reports(tf, sel, None, "count", 2)
        assert a == b
        assert a == build_report(tf, sel, jobs=1)
        assert any(report_scan.summarised(tf, i, sel, True) for i in sel.chunks(tf))


def test_the_cli_prints_the_same_with_and_without_summaries(
    files: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    for argv in (
        [],
        ["--cpu", "0,1", "--reason", "CPUID,MSR_WRITE", "--since", "500r", "--until", "12000r"],
        ["--top", "3", "--sort", "time", "--since", "0.0003s"],
    ):
        outs: list[Any] = []
        for extra in ([], ["--no-summaries"]):
            assert main(["report", *argv, *extra, str(files[0])]) == 0
            outs.append(capsys.readouterr().out)
            assert main(["report", "--json", *argv, *extra, str(files[0])]) == 0
            outs.append(json.loads(capsys.readouterr().out))
        assert outs[0] == outs[2]
        assert outs[1] == outs[3]
        assert outs[1]["records"] > 0


def test_a_file_without_summaries_reports_the_same(files: list[Path], tmp_path: Path) -> None:
    tf = TraceFile.open(files[1])
    dest = tmp_path / "v2.hvt"
    with TraceWriter(dest, dict(tf.meta), chunk_records=300, summaries=False) as w:
        w.add(tf.records())
    old = TraceFile.open(dest)
    assert old.meta["format_version"] == 2
    assert not any(old.has_summary(i) for i in range(len(old.index)))
    assert build_report(old, jobs=1) == build_report(tf, jobs=1) | {"file": str(dest), "meta": old.meta}
