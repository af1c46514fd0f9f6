"""A real capture (QEMU/SVM, storm, 2 CPUs) damaged the ways a disk or a bad copy damages it, then read
by every trace command through the `hvtrace` CLI as a user would: each says so in one warning line,
reports the same lost records, and exits 79 (ExitCode.DAMAGED); the intact file exits 0."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from hvtrace.exitcodes import ExitCode
from hvtrace.trace.tracefile import CHUNK_HEADER, TraceFile
from tests.integration.conftest import RunFn, storm_capture

pytestmark = [pytest.mark.slow, pytest.mark.qemu]

WARN_RE = re.compile(r"^hvtrace: warning: (.*)$", re.MULTILINE)


def test_every_command_reports_a_damaged_real_capture_the_same_way(
    hvtrace_run: RunFn, tmp_path: Path
) -> None:
    good = tmp_path / "storm.hvt"
    storm_capture(hvtrace_run, good, "--duration", "2")
    tf = TraceFile.open(good)
    assert len(tf.index) >= 4, "the storm should fill several chunks"
    data = bytearray(good.read_bytes())
    for i in (1, 3):  # two payloads, as a flipped disk sector would
        data[int(tf.index["offset"][i]) + CHUNK_HEADER.size + 11] ^= 0x55
    bad = tmp_path / "bad.hvt"
    bad.write_bytes(bytes(data))
    skipped = int(tf.index["count"][1]) + int(tf.index["count"][3])

    ok = hvtrace_run("report", "--json", str(good))
    assert ok.returncode == 0
    assert not WARN_RE.search(ok.output)
    lines = set()
    for cmd in (
        ["report", str(bad)],
        ["report", "--json", str(bad)],
        ["export", str(bad), "--format", "csv", "-o", str(tmp_path / "x.csv")],
        ["export", str(bad), "--format", "perfetto", "-o", str(tmp_path / "x.json")],
        ["export", str(bad), "--format", "parquet", "-o", str(tmp_path / "x.parquet")],
    ):
        run = hvtrace_run(*cmd)
        assert run.returncode == ExitCode.DAMAGED, run.output
        assert "Traceback" not in run.output
        warns = WARN_RE.findall(run.output)
        assert len(warns) == 1, run.output
        lines.add(warns[0])
        if cmd[:2] == ["report", "--json"]:
            rep = json.loads(run.stdout)
            assert rep["records"] == tf.record_count - skipped
            assert rep["lost_total"] == skipped
            assert rep["damage"]["skipped_chunks"] == 2
        if cmd[0] == "export":
            assert f"exported {tf.record_count - skipped} records" in run.stdout
            assert f"{skipped} records lost" in run.stdout
    (line,) = lines
    assert f"2 chunks skipped, {skipped} records lost" in line
    assert f"chunk 1 at offset {int(tf.index['offset'][1])}: checksum mismatch, and 1 more" in line
