"""Damaged trace files are handled one way by every command (report, report --json, export in every
format, tui --replay's exit path): the same warning line, said once, the same lost/skipped counts, the
same exit code (ExitCode.DAMAGED); and every output path is checked before any work starts.

Driven through the real CLI entry point (hvtrace.cli.main) on real files written by TraceWriter and
then damaged the way disks and killed copies damage them; one test runs the installed `hvtrace`
script to see that no traceback escapes.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from hvtrace.cli import main
from hvtrace.commands.report_handler import warn_damage
from hvtrace.exitcodes import ExitCode
from hvtrace.trace.replay import Replay
from hvtrace.trace.tracefile import CHUNK_HEADER, TraceFile, TraceWriter
from tests.unit.test_tracefile import make_records

HVTRACE = Path(sys.executable).parent / "hvtrace"
CHUNK = 256


def write_trace(path: Path) -> None:
    """2 CPUs x 1000 records in chunks of 256 (8 chunks), 5 records lost on CPU 1 by the ring."""
    with TraceWriter(path, {"vendor": 2, "vendor_name": "SVM", "cpus": 2}, chunk_records=CHUNK) as w:
        w.add(np.concatenate([make_records(0, 1000, 1000), make_records(1, 1000, 1005)]))
        w.note_lost(1, 5)


def damage(path: Path, out: Path, *, payload_of: tuple[int, ...] = (), header_of: tuple[int, ...] = (),
           index: bool = False) -> Path:  # fmt: skip
    tf = TraceFile.open(path)
    data = bytearray(path.read_bytes())
    for i in payload_of:
        data[int(tf.index["offset"][i]) + CHUNK_HEADER.size + 7] ^= 0xFF
    for i in header_of:
        data[int(tf.index["offset"][i]) + 20] ^= 0xFF  # inside first_seq: header CRC fails
    if index:
        data[-30] ^= 0xFF  # inside the index body: index CRC fails
    out.write_bytes(bytes(data))
    return out


@pytest.fixture
def good(tmp_path: Path) -> Path:
    p = tmp_path / "good.hvt"
    write_trace(p)
    return p


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def warnings(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if "warning" in ln]


COMMANDS = [
    ("report",),
    ("report", "--json"),
    ("export", "--format", "csv"),
    ("export", "--format", "perfetto"),
    ("export", "--format", "parquet"),
]


def argv_of(cmd: tuple[str, ...], file: Path, tmp: Path) -> list[str]:
    if cmd[0] == "export":
        return [*cmd, str(file), "-o", str(tmp / f"out.{cmd[-1]}")]
    return [*cmd, str(file)]


@pytest.mark.parametrize("cmd", COMMANDS, ids=[" ".join(c) for c in COMMANDS])
def test_a_bad_chunk_gives_every_command_one_warning_and_the_damaged_exit_code(
    cmd: tuple[str, ...], good: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: export exited 0 with no warning; report exited 65 and printed the chunk twice (in the
    report and on stderr), with its prefix repeated ("chunk 3 at offset N: chunk 3 at offset N: ...")."""
    bad = damage(good, tmp_path / "bad.hvt", payload_of=(3,))
    off = int(TraceFile.open(good).index["offset"][3])
    code, out, err = run(capsys, *argv_of(cmd, bad, tmp_path))
    assert code == ExitCode.DAMAGED
    lines = warnings(err) + warnings(out)
    assert lines == [
        f"hvtrace: warning: {bad} is damaged: 1 chunk skipped, {CHUNK} records lost "
        f"(chunk 3 at offset {off}: checksum mismatch); the result is partial"
    ]
    assert lines[0].count(f"chunk 3 at offset {off}") == 1
    assert "Traceback" not in err


def test_records_of_a_skipped_chunk_are_counted_as_lost(
    good: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: `lost` counted only the ring's 5 losses; the 256 records of the skipped chunk vanished."""
    bad = damage(good, tmp_path / "bad.hvt", payload_of=(3,))
    cpu = int(TraceFile.open(good).index["cpu"][3])
    code, out, _ = run(capsys, "report", "--json", str(bad))
    rep = json.loads(out)
    assert code == ExitCode.DAMAGED
    assert rep["records"] == 2000 - CHUNK
    assert rep["lost_total"] == 5 + CHUNK
    assert rep["lost"][str(cpu)] == CHUNK + (5 if cpu == 1 else 0)
    assert rep["damage"]["skipped_chunks"] == 1
    assert rep["damage"]["skipped_records"] == CHUNK
    code, out, _ = run(capsys, "report", str(bad))
    assert f"lost records: {5 + CHUNK} (" in out
    assert f"{CHUNK} in damaged chunks" in out
    csv_out = tmp_path / "x.csv"
    code, out, _ = run(capsys, "export", str(bad), "--format", "csv", "-o", str(csv_out))
    assert f"exported {2000 - CHUNK} records" in out
    assert f"{5 + CHUNK} records lost" in out
    with csv_out.open() as fh:
        assert sum(1 for _ in csv.reader(fh)) == 1 + 2000 - CHUNK


def test_the_same_counts_and_line_from_every_command_and_replay(
    good: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = damage(good, tmp_path / "bad.hvt", payload_of=(1, 5), header_of=(2,), index=True)
    seen = set()
    for cmd in COMMANDS:
        code, _, err = run(capsys, *argv_of(cmd, bad, tmp_path))
        assert code == ExitCode.DAMAGED
        (line,) = warnings(err)
        seen.add(line)
    replay = Replay(bad)  # what `hvtrace tui --replay` runs; its exit path calls warn_damage
    assert warn_damage(replay.file) == ExitCode.DAMAGED
    (line,) = warnings(capsys.readouterr().err)
    seen.add(line)
    assert len(seen) == 1
    # the index is damaged too, so the chunks are found by scanning: chunk 2's own header is damaged,
    # its record count is unknown ("at least"); the two payload-damaged chunks' headers give theirs
    assert "3 chunks skipped, at least 512 records lost" in line
    assert len(replay) == 2000 - 3 * CHUNK


def test_a_damaged_index_is_named_as_the_index(
    good: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: "chunk -1 at offset N: index checksum mismatch; index rebuilt by scanning"."""
    bad = damage(good, tmp_path / "bad.hvt", index=True)
    code, out, err = run(capsys, "report", str(bad))
    assert code == ExitCode.DAMAGED
    assert "chunk -1" not in out + err
    (line,) = warnings(err)
    assert "index at offset" in line
    assert "unusable (checksum mismatch), rebuilt by scanning the chunks" in line
    assert "trace " in out
    assert json.loads(run(capsys, "report", "--json", str(bad))[1])["records"] == 2000


def test_an_intact_file_and_a_killed_capture_are_not_damage(
    good: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "report", str(good))
    assert (code, warnings(err)) == (0, [])
    cut = tmp_path / "killed.hvt"
    data = good.read_bytes()
    cut.write_bytes(data[: data.rfind(b"HVCK") + 70])  # no index, last chunk incomplete
    code, _, err = run(capsys, "export", str(cut), "--format", "csv", "-o", str(tmp_path / "k.csv"))
    assert code == 0
    assert warnings(err) == []
    assert "capture killed?" in err


EXPORT = ("export", "--format", "csv")
CAPTURE = ("capture", "--backend", "qemu")
UNWRITABLE = [(c, w) for c in (EXPORT, CAPTURE) for w in ("missing-dir", "a-directory", "parent-is-a-file")]


@pytest.mark.parametrize(("cmd", "where"), [*UNWRITABLE, (EXPORT, "the-input")])
def test_an_unwritable_output_is_refused_before_any_work(
    cmd: tuple[str, ...], where: str, good: Path, tmp_path: Path
) -> None:
    """Before: a Python traceback (FileNotFoundError / IsADirectoryError) after the work was done;
    capture booted QEMU first. Now one line, exit 73, nothing started, nothing written."""
    out = {
        "missing-dir": tmp_path / "nope" / "x.out",
        "a-directory": tmp_path,
        "parent-is-a-file": good / "x.out",
        "the-input": good,
    }[where]
    argv = [str(HVTRACE), *cmd, "-o", str(out)]
    argv += [str(good)] if cmd[0] == "export" else ["--duration", "1"]
    before = good.read_bytes()
    t = time.monotonic()
    env = {**os.environ, "CI": "true"}
    proc = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == ExitCode.CANT_CREATE, proc.stderr
    assert proc.stderr.count("\n") == 1
    assert proc.stderr.startswith(f"hvtrace: error: cannot write {out}: ")
    assert "Traceback" not in proc.stderr
    assert "qemu pid" not in proc.stdout + proc.stderr  # nothing was booted
    assert time.monotonic() - t < 30
    assert good.read_bytes() == before
    assert not (tmp_path / "nope").exists()


def test_core_from_dump_checks_its_output_first(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Before: IsADirectoryError traceback after reading the dumps."""
    (tmp_path / "ram.0").write_bytes(b"\0" * 4096)
    code, _, err = run(capsys, "core-from-dump", str(tmp_path / "ram"), "-o", str(tmp_path))
    assert code == ExitCode.CANT_CREATE
    assert err == f"hvtrace: error: cannot write {tmp_path}: it is a directory\n"
    code, _, err = run(capsys, "core-from-dump", str(tmp_path / "ram"), "-o", str(tmp_path / "core.elf"))
    assert code == 0
    assert (tmp_path / "core.elf").read_bytes()[:4] == b"\x7fELF"
