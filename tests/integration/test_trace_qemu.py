"""Trace pipeline on QEMU (AMD SVM back end): the shared RAM file read live (offset == guest-physical
address), the QMP ELF dump, live captures of the storm and self-test guests, and bad input via the CLI.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from pathlib import Path

import pytest

from hvtrace.abi import HV_DISCOVERY_MAGIC, HvExitKind
from hvtrace.decode.vendor import SVM
from hvtrace.exitcodes import ExitCode
from hvtrace.launch.qemu import QemuSession
from hvtrace.paths import image_path
from hvtrace.relocation import slide_from_console
from hvtrace.trace.capture import Capture
from hvtrace.trace.discovery import HEADER_SIZE, discover, elf_symbol
from hvtrace.trace.sources import DumpSource, SharedRamSource, qmp_dump_guest_memory
from hvtrace.trace.tracefile import TraceFile
from tests.integration.conftest import RunFn

pytestmark = [pytest.mark.slow, pytest.mark.qemu]


def wait_for(cond: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(cond) and cond():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_ram_file_offset_is_the_guest_physical_address_and_matches_the_qmp_dump(tmp_path: Path) -> None:
    with QemuSession(cpus=1, memory_mb=64, cmdline="storm=1", timeout=60) as s:
        wait_for(lambda: any("CPUs online" in line for line in s.lines), 30)
        assert s.ram_path is not None
        assert s.qmp_socket is not None
        link = elf_symbol(image_path())
        assert link is not None
        slide = slide_from_console(s.lines)  # the image moved itself to the top of RAM at boot
        assert slide, s.lines[:10]
        addr = link + slide
        with SharedRamSource(s.ram_path) as ram:
            disc = discover(ram, elf=image_path())
            assert disc.found_by == "symbol"
            assert disc.paddr == addr
            assert disc.cpu_count == 1
            # The header is final once the CPU runs as a guest ('launched' is its last change, abi.h):
            # "CPUs online" comes before that, and the dump below is taken later.
            wait_for(lambda: discover(ram, elf=image_path()).header.launched == 1, 30)
            live = ram.read(addr, HEADER_SIZE)
        dump = qmp_dump_guest_memory(s.qmp_socket, tmp_path / "core.elf")
        with DumpSource.elf(dump) as core:
            assert core.read(addr, HEADER_SIZE) == live
            assert int.from_bytes(core.read(addr, 8), "little") == HV_DISCOVERY_MAGIC
            scanned = discover(core, elf=None)
            assert scanned.paddr == addr


def test_live_storm_capture_from_shared_ram(tmp_path: Path) -> None:
    # A ring that holds the boot-to-attach gap (≈100 k exits/s under TCG): lossless from the start.
    cap = Capture.start(backend="qemu", cpus=2, memory_mb=128, cmdline="storm=1 ring=262144", boot_timeout=30)
    with cap:
        recs = cap.collect(count=20000)
        lost = cap.progress.lost
    assert len(recs) == 20000
    assert lost == 0  # lossless consumer tail while we keep up
    kinds = Counter(recs["kind"].tolist())
    assert kinds[int(HvExitKind.CPUID)] > 15000
    for cpu in (0, 1):
        seq = recs["seq"][recs["cpu"] == cpu]
        assert (seq[1:] == seq[:-1] + 1).all()


def test_live_selftest_capture_equals_the_hypervisor_counters() -> None:
    cap = Capture.start(backend="qemu", cpus=2, boot_timeout=30)
    with cap:
        recs = cap.collect()  # until the run ends; the rings outlive QEMU in the mmapped RAM file
        assert cap.progress.lost == 0
        console = cap.console
    counters: dict[int, Counter[str]] = {}
    for line in console:
        m = re.match(r"^svm: CPU (\d+) exits:(.*)$", line)
        if m:
            counters[int(m.group(1))] = Counter(
                {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
            )
    assert sorted(counters) == [0, 1], console[-5:]
    for cpu, want in counters.items():
        mine = Counter(SVM.reason_name(r) for r in recs["reason"][recs["cpu"] == cpu].tolist())
        assert sum(mine.values()) == sum(want.values())
        assert mine == want  # one name table: hv/svm/names.c and hvtrace.decode agree


def test_cli_capture_for_a_duration_from_a_live_storm(hvtrace_run: RunFn, tmp_path: Path) -> None:
    out = tmp_path / "x.hvt"
    r = hvtrace_run("capture", "--backend", "qemu", "--append", "storm=1", "--duration", "2", "-o", str(out))
    assert r.returncode == 0, r.describe()
    assert "wrote" in r.stdout
    recs = TraceFile.open(out).records()
    assert len(recs) > 1000
    assert (recs["kind"] == int(HvExitKind.CPUID)).sum() > 1000


def test_bad_input_gives_one_error_line_and_a_distinct_code(hvtrace_run: RunFn, tmp_path: Path) -> None:
    missing = hvtrace_run("capture", "--ram", str(tmp_path / "gone.ram"), "-o", str(tmp_path / "x.hvt"))
    assert missing.returncode == ExitCode.NO_INPUT, missing.describe()
    assert "does not exist" in missing.stderr
    assert missing.stderr.count("error:") == 1

    wrong = tmp_path / "wrong.hvt"
    wrong.write_text("hello\n")
    r = hvtrace_run("report", str(wrong))
    assert r.returncode == ExitCode.BAD_DATA, r.describe()
    assert "not an hvtrace trace file" in r.stderr, r.describe()

    r = hvtrace_run("export", str(tmp_path / "none.hvt"), "--format", "csv", "-o", str(tmp_path / "o.csv"))
    assert r.returncode == ExitCode.NO_INPUT, r.describe()

    # a RAM file whose owner is dead (name carries the launcher pid): refused, not read as live
    stale = tmp_path / "hvtrace-999999-abcdef.ram"
    stale.write_bytes(b"\0" * 4096)
    r = hvtrace_run("capture", "--ram", str(stale), "-o", str(tmp_path / "y.hvt"))
    assert r.returncode == ExitCode.NO_INPUT, r.describe()
    assert "gone" in r.stderr, r.describe()


def test_tracing_switched_off_publishes_nothing_but_still_counts() -> None:
    cap = Capture.start(backend="qemu", cpus=1, cmdline="storm_iters=1000 trace=0", boot_timeout=30)
    with cap:
        recs = cap.collect()  # until the run ends
        console = cap.console
    assert len(recs) == 0
    assert "storm: done, 1000 CPUIDs on each of 1 CPUs" in console
    counts = [line for line in console if line.startswith("svm: CPU 0 exits:")][-1]  # printed after the storm
    cpuid = int(re.search(r"CPUID=(\d+)", counts).group(1))  # type: ignore[union-attr]
    assert cpuid >= 1000


def test_cli_capture_filters_by_cpu_and_reason(hvtrace_run: RunFn, tmp_path: Path) -> None:
    out = tmp_path / "f.hvt"
    r = hvtrace_run(
        "capture", "--backend", "qemu", "--cpus", "2", "--append", "storm=1",
        "--cpu", "1", "--reason", "cpuid", "--count", "2000", "-o", str(out),
    )  # fmt: skip
    assert r.returncode == 0, r.describe()
    recs = TraceFile.open(out).records()
    assert len(recs) == 2000
    assert (recs["cpu"] == 1).all()
    assert (recs["kind"] == int(HvExitKind.CPUID)).all()


def test_cli_capture_until_reason_stops_at_the_first_one(hvtrace_run: RunFn, tmp_path: Path) -> None:
    out = tmp_path / "u.hvt"
    # The self-test's first stage-2 fault (a memory-map hole) ends the capture.
    r = hvtrace_run("capture", "--backend", "qemu", "--until-reason", "npf", "-o", str(out))
    assert r.returncode == 0, r.describe()
    recs = TraceFile.open(out).records()
    assert len(recs) > 1
    assert SVM.reason_name(int(recs["reason"][-1])) == "NPF"
    assert all(SVM.reason_name(int(x)) != "NPF" for x in recs["reason"][:-1])
