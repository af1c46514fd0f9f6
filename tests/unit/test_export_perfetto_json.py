"""`hvtrace export --format perfetto-json`: an exit whose handling time is known is a complete event
("ph": "X") lasting tsc_resume - tsc; one whose handling time is unknown (tsc_resume 0, or before the
exit's tsc) is an instant. Expected values are computed here from the records that were written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hvtrace.decode.vendor import VMX
from hvtrace.trace.records import Records
from hvtrace.trace.tracefile import TraceWriter
from tests.unit.test_export_perfetto import HZ, export, write
from tests.unit.test_tracefile import make_records


def exit_events(path: Path) -> dict[tuple[int, int], dict[str, Any]]:
    """(cpu, seq) -> the exit's event (metadata events left out)."""
    events = json.loads(path.read_text())["traceEvents"]
    return {(e["tid"], e["args"]["seq"]): e for e in events if e["ph"] != "M"}


def check(events: dict[tuple[int, int], dict[str, Any]], recs: dict[int, Records], per_tick: float) -> None:
    t0 = min(int(r["tsc"].min()) for r in recs.values())
    assert len(events) == sum(len(r) for r in recs.values())
    for cpu, r in recs.items():
        for rec in r:
            e = events[(cpu, int(rec["seq"]))]
            tsc, resume = int(rec["tsc"]), int(rec["tsc_resume"])
            assert e["name"] == VMX.reason_name(int(rec["reason"]))
            assert e["ts"] == pytest.approx((tsc - t0) * per_tick)
            if resume != 0 and resume >= tsc:
                assert e["ph"] == "X"
                assert e["dur"] == pytest.approx((resume - tsc) * per_tick)
            else:
                assert (e["ph"], e["s"]) == ("i", "t")
                assert "dur" not in e


def test_known_handling_times_are_complete_events(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "t.hvt"
    recs = write(src)  # tsc_resume = tsc + 200..249 ticks, every 100th record 0 (unknown)
    out = tmp_path / "t.json"
    assert export(src, out, capsys, "perfetto-json") == 0
    events = exit_events(out)
    check(events, recs, 1e6 / HZ)  # µs
    kinds = [e["ph"] for e in events.values()]
    assert kinds.count("i") == sum(int((r["tsc_resume"] == 0).sum()) for r in recs.values()) == 60
    assert kinds.count("X") == 6000 - 60


def test_without_a_tsc_rate_times_are_ticks_and_a_resume_before_the_exit_is_unknown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    r = make_records(0, 5, 5000, 1000)
    r["tsc_resume"] = [5300, 0, 7010, 7500, 9999]  # exits at 5000, 6000, ...: record 4 "resumed" before it
    src = tmp_path / "t.hvt"
    with TraceWriter(src, {"vendor": 1, "vendor_name": "VMX", "cpus": 1}) as w:
        w.add(r)
    out = tmp_path / "t.json"
    assert export(src, out, capsys, "perfetto-json") == 0
    events = exit_events(out)
    check(events, {0: r}, 1.0)
    assert [events[(0, s)]["ph"] for s in range(1, 6)] == ["X", "i", "X", "i", "X"]
    assert [events[(0, s)].get("dur") for s in (1, 3, 5)] == [300, 10, 999]
    assert json.loads(out.read_text())["otherData"]["time_unit"] == "TSC ticks"
