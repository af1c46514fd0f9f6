"""Trace pipeline on Bochs (VT-x back end): the port-0xE9 frame stream live, and a post-mortem memory
dump decoded through the discovery header; both must equal the hypervisor's own per-CPU exit counters.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from hvtrace.abi import HvVendor
from hvtrace.decode.vendor import VMX
from hvtrace.launch import procs
from hvtrace.launch.bochs import BochsSession
from hvtrace.trace.capture import Capture
from hvtrace.trace.discovery import discover
from hvtrace.trace.reader import RingSet
from hvtrace.trace.records import Records
from hvtrace.trace.sources import DumpSource
from hvtrace.trace.tracefile import TraceFile
from hvtrace.trace.tsc_rate import PIT_EMULATED_SOURCE
from tests.integration.conftest import RunFn, hvtrace_argv, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.bochs]
COUNTS_RE = re.compile(r"^vmx: CPU (\d+) exits:(.*)$")


def hv_counts(lines: list[str]) -> dict[int, Counter[str]]:
    """The hypervisor's own per-CPU counters ("vmx: CPU n exits: NAME=count ...")."""
    out: dict[int, Counter[str]] = {}
    for line in lines:
        m = COUNTS_RE.match(line)
        if m:
            out[int(m.group(1))] = Counter({k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))})
    return out


def rec_counts(recs: Records) -> dict[int, Counter[str]]:
    out: dict[int, Counter[str]] = {}
    for cpu, reason in zip(recs["cpu"].tolist(), recs["reason"].tolist(), strict=True):
        out.setdefault(cpu, Counter())[VMX.reason_name(reason)] += 1
    return out


def test_frame_stream_capture_equals_the_hypervisor_counters(tmp_path: Path) -> None:
    with Capture.start(backend="bochs", cpus=2, memory_mb=32, timeout=120) as cap:
        recs = cap.collect()
        lines = cap.console
        stats = cap.stream.src.stats  # type: ignore[attr-defined]
    expected = hv_counts(lines)
    assert sorted(expected) == [0, 1], lines[-5:]
    assert rec_counts(recs) == expected
    assert stats.bad_frames == 0
    assert stats.lost == {}
    for cpu in (0, 1):
        assert recs["seq"][recs["cpu"] == cpu].tolist() == list(range(1, sum(expected[cpu].values()) + 1))


def test_post_mortem_dump_rings_equal_the_hypervisor_counters() -> None:
    with BochsSession(cpus=2, memory_mb=32, dump_memory=True) as s:
        result = s.wait()
        assert result.exit_code == 0, result.message
        with DumpSource.raw(s.dump_files()) as src:
            disc = discover(src, elf=None)  # magic scan of the dump
            assert disc.vendor == HvVendor.VMX
            assert disc.cpu_count == 2
            assert sorted(disc.rings) == [0, 1]
            rings = RingSet(src, disc)
            recs = rings.poll()
            assert all(st.lost == 0 for st in rings.stats)
        expected = hv_counts(s.lines)
    assert rec_counts(recs) == expected


def test_cli_capture_report_export_on_a_real_capture(hvtrace_run: RunFn, tmp_path: Path) -> None:
    out = tmp_path / "bochs.hvt"
    cap = hvtrace_run(
        "capture", "--backend", "bochs", "--cpus", "2", "--memory", "32M", "-o", str(out), "--quiet"
    )
    assert cap.returncode == 0, cap.describe()
    assert re.search(r"wrote 124 records .* lost 0: lossless", cap.stdout), cap.stdout
    tf = TraceFile.open(out)
    assert tf.meta["vendor_name"] == "VMX"
    assert "trace_e9=1" in tf.meta["cmdline"]
    assert tf.meta["tsc_hz"]
    # 124 records within a second: too short to measure against the host clock, so the PIT's rate,
    # labelled as Bochs' emulated time (hvtrace.trace.tsc_rate)
    assert tf.meta["tsc_hz_source"] == PIT_EMULATED_SOURCE
    assert tf.meta["build_id"]

    rep = hvtrace_run("report", str(out), "--json")
    assert rep.returncode == 0, rep.describe()
    doc = json.loads(rep.stdout)
    by = {r["reason_name"]: r["count"] for r in doc["by_reason"]}
    assert by["VMCALL"] == 78
    assert by["CPUID"] == 12
    assert doc["records"] == 124
    assert {r["cpu"]: r["count"] for r in doc["by_cpu"]} == {0: 62, 1: 62}
    assert doc["drilldown"]["CR number"]
    assert doc["drilldown"]["CPUID leaf"]
    text = hvtrace_run("report", str(out))
    assert text.returncode == 0
    assert "VMCALL" in text.stdout
    assert "EPT_VIOLATION" in text.stdout

    pq_path, json_path, csv_path = tmp_path / "x.parquet", tmp_path / "x.json", tmp_path / "x.csv"
    for fmt, path in (("parquet", pq_path), ("perfetto", json_path), ("csv", csv_path)):
        r = hvtrace_run("export", str(out), "--format", fmt, "-o", str(path))
        assert r.returncode == 0, r.describe()
    table = pq.read_table(pq_path)
    assert table.num_rows == 124
    assert Counter(table.column("reason_name").to_pylist())["VMCALL"] == 78
    doc = json.loads(json_path.read_text())
    events = [e for e in doc["traceEvents"] if e["ph"] != "M"]
    assert len(events) == 124
    assert {e["tid"] for e in events} == {0, 1}
    assert all(isinstance(e["ts"], float) and e["name"] for e in events)
    # ABI v2: every exit of a finished run was resumed, so each is a complete event lasting its handling
    assert all(e["ph"] == "X" and e["dur"] > 0 for e in events)
    threads = {e["args"]["name"] for e in doc["traceEvents"] if e.get("name") == "thread_name"}
    assert threads == {"CPU 0", "CPU 1"}
    assert csv_path.read_text().count("\n") == 125


def test_capture_killed_with_sigkill_is_readable(tmp_path: Path) -> None:
    out = tmp_path / "storm.hvt"
    proc = subprocess.Popen(
        hvtrace_argv(
            "capture", "--backend", "bochs", "--memory", "32M", "--append", "storm=1", "-o", str(out)
        ),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        # complete chunks are flushed at least every second while records flow
        wait_for(
            lambda: proc.poll() is not None or (out.exists() and out.stat().st_size > 20000),
            90,
            "the first complete chunks in the trace file",
        )
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        time.sleep(1.5)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        assert procs.group_members(proc.pid) == []
        # the killed launcher cannot remove its Bochs dir (named with its pid): ours to remove
        left = list(Path("/tmp").glob(f"hvtrace-bochs-{proc.pid}-*"))
        for d in left:
            subprocess.run(["rm", "-rf", str(d)], check=False)
    tf = TraceFile.open(out)
    assert tf.recovered  # no index: it was rebuilt by scanning
    recs = tf.records(0, ordered=False)
    assert len(recs) > 1000
    assert (recs["seq"] == np.arange(1, len(recs) + 1)).all()  # no hole up to the last complete chunk
    assert tf.errors == []
    # SIGKILL left the launcher's Bochs dir behind, found by the launcher's pid in its name
    assert len(left) == 1, left
