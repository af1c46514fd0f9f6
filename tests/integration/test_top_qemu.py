"""`hvtrace top` on a live storm counts what a capture of the same window holds."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from hvtrace.commands.top_handler import POLL_PERIOD
from hvtrace.decode.vendor import reason_name
from hvtrace.trace.tracefile import TraceFile
from tests.integration.conftest import Live, hvtrace_argv

pytestmark = [pytest.mark.slow, pytest.mark.qemu]

HEADER_RE = re.compile(r"^hvtrace top: (\d+) CPUs \((\w+)\), interval ([\d.]+) s, (\d+) exits", re.MULTILINE)
WINDOW_RE = re.compile(r"^window: tsc (\d+)\.\.(\d+)$", re.MULTILINE)


def table_rows(text: str, title: str) -> dict[str, int]:
    """The rows of one of top's tables (``CPU`` or ``REASON``): first column -> exits."""
    block = text.split(f"\n{title} ", 1)[1].split("\n\n", 1)[0]
    return {line.split()[0]: int(line.split()[1]) for line in block.splitlines()[1:] if line.strip()}


def test_top_once_counts_what_a_capture_of_the_same_window_holds(
    hvtrace_live: Callable[..., Live], tmp_path: Path
) -> None:
    run = hvtrace_live("run", "--cpus", "2", "--append", "storm=1")
    run.read_until(r"^hvtrace: runs until stopped: press Ctrl-C, or run `kill \d+`", 60)
    run.read_until(r"storm: every CPU now executes CPUID", 120)
    ram = run.ram_file
    assert ram is not None
    out = tmp_path / "window.hvt"
    cap = hvtrace_live("capture", "--ram", str(ram), "-o", str(out), "--quiet")
    deadline = time.monotonic() + 60
    while not out.exists() and cap.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert out.exists(), "the capture never started"

    top = subprocess.run(
        hvtrace_argv("top", "--ram", str(ram), "--once", "--interval", "2"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    time.sleep(1)  # ordering, not timing: the capture reads on past the end of top's window
    cap.proc.send_signal(signal.SIGINT)
    assert cap.proc.wait(timeout=60) == 0, cap.stderr_text()
    assert top.returncode == 0, top.stdout + top.stderr

    header = HEADER_RE.search(top.stdout)
    window = WINDOW_RE.search(top.stdout)
    assert header is not None, top.stdout
    assert window is not None, top.stdout
    assert (int(header.group(1)), header.group(2)) == (2, "SVM")
    first, last = int(window.group(1)), int(window.group(2))
    seconds, total = float(header.group(3)), int(header.group(4))
    assert total > 1000  # a storm: enough exits for the comparison to mean something
    per_reason = table_rows(top.stdout, "REASON")
    per_cpu = table_rows(top.stdout, "CPU")
    assert sum(per_reason.values()) == total
    assert sum(per_cpu.values()) == total

    tf = TraceFile.open(out)
    recs = tf.records()
    assert recs["tsc"].min() <= first, "the capture must cover top's window"
    assert recs["tsc"].max() >= last, "the capture must cover top's window"
    vendor = int(tf.meta["vendor"])
    inside = recs[(recs["tsc"] >= first) & (recs["tsc"] <= last)]
    # Top's window edges are where its first and last ring reads fell: the exits of one read period
    # at either end may fall on either side, so that is the tolerance, counted from the capture.
    edge = int((last - first) * POLL_PERIOD / seconds) + 1
    near_edge = inside[(inside["tsc"] < first + edge) | (inside["tsc"] > last - edge)]

    def names(r: np.ndarray) -> dict[str, int]:
        values, counts = np.unique(r["reason"], return_counts=True)
        return {reason_name(vendor, int(v)): int(n) for v, n in zip(values, counts, strict=True)}

    captured, tolerance = names(inside), names(near_edge)
    assert set(per_reason) == set(captured)
    for name, n in per_reason.items():
        assert abs(n - captured[name]) <= tolerance.get(name, 0), (name, n, captured[name], tolerance)
    for cpu, n in per_cpu.items():
        on_cpu = inside["cpu"] == int(cpu)
        slack = int((near_edge["cpu"] == int(cpu)).sum())
        assert abs(n - int(on_cpu.sum())) <= slack, (cpu, n, int(on_cpu.sum()), slack)

    run.proc.send_signal(signal.SIGTERM)  # the documented way to stop a run meant to be attached to
    assert run.proc.wait(timeout=60) == 143
