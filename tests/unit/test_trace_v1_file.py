"""A trace file of the previous release (ABI v1: 64-byte records) still reads, reports and exports.

tests/data/trace-v1-svm-2cpu.hvt was captured by hvtrace at ABI v1 (commit 0987c15) from a 2-CPU
QEMU/SVM storm (`hvtrace capture --backend qemu --cpus 2 --append storm=1 --count 3000`).
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from hvtrace import paths
from hvtrace.abi import HV_ABI_VERSION, HvExitKind
from hvtrace.cli import main
from hvtrace.trace.fileformat import FILE_HEADER
from hvtrace.trace.tracefile import TraceFile

V1 = paths.repo_root() / "tests" / "data" / "trace-v1-svm-2cpu.hvt"


def test_the_file_is_abi_v1_and_this_hvtrace_is_newer() -> None:
    _, _, abi, _, _ = FILE_HEADER.unpack_from(V1.read_bytes())
    assert abi == 1
    assert abi < HV_ABI_VERSION


def test_v1_records_widen_with_unknown_handling_time_and_cr3() -> None:
    tf = TraceFile.open(V1)
    recs = tf.records()
    assert len(recs) == 3000
    assert tf.lost_total() == 0
    assert (recs["tsc_resume"] == 0).all()  # not recorded in v1: unknown, never invented
    assert (recs["cr3"] == 0).all()
    assert (recs["tsc"] > 0).all()
    assert sorted(set(recs["cpu"].tolist())) == [0, 1]
    for cpu in (0, 1):
        seq = recs["seq"][recs["cpu"] == cpu]
        assert (seq[1:] == seq[:-1] + 1).all()  # the fields kept their meaning and place
    assert (recs["kind"] == int(HvExitKind.CPUID)).sum() == 2890


def test_v1_file_reports_and_exports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(V1)]) == 0
    out = capsys.readouterr().out
    assert "3000 records" in out
    assert "CPUID" in out
    dest = tmp_path / "v1.csv"
    assert main(["export", "--format", "csv", "-o", str(dest), str(V1)]) == 0
    with dest.open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3000
