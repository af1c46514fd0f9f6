"""Guest symbols on a real Linux boot capture (QEMU TCG, SVM back end, 2 CPUs, Debian's kernel).

Debian's kernel package ships no System.map, so the guest's /init prints the /proc/kallsyms lines of its
CPUID and MSR functions (hvtrace.guest_assets.kallsyms): run-time addresses. The kernel's real KASLR
slide is theirs minus the link-time address of its text, read from the ELF headers inside the bzImage;
a link-time "System.map" is the dump moved back by that slide. `report --symbols` must find the same
slide from the trace alone and show the CPUID and MSR exits in native_cpuid / native_*msr*; export puts
the symbol in a column; a TUI replay shows symbols in the log, the instruction read at capture time
through the guest's page tables (the records' CR3), and the handling time per reason.
"""

from __future__ import annotations

import asyncio
import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hvtrace import guest_assets as ga
from hvtrace.abi import HvExitKind
from hvtrace.guest_assets.kallsyms import KALLSYMS_CMD, kallsyms_lines, link_text_address
from hvtrace.launch.guest import GuestSpec
from hvtrace.symbols import load
from hvtrace.trace.capture import Capture
from hvtrace.trace.code import CodeCache, CodeMap
from hvtrace.trace.tracefile import TraceFile
from hvtrace.tui.app import HvTraceApp
from hvtrace.tui.sources import LiveSource, ReplaySource
from tests.integration.conftest import Linux, RunFn
from tests.integration.test_linux_guest import LINUX_ARGS
from tests.integration.test_tui_qemu import SIZE, table_rows, until

pytestmark = [pytest.mark.slow, pytest.mark.qemu]

SLIDE_RE = re.compile(r"^symbols: KASLR slide (0x[0-9a-f]+) \(from (.+)\)$", re.MULTILINE)


@dataclass(frozen=True)
class Booted:
    trace: Path
    kallsyms: Path  # the guest's lines, run-time addresses
    system_map: Path  # the same symbols at link-time addresses
    slide: int  # the kernel's real slide: kallsyms _text - the bzImage's link address


@pytest.fixture(scope="module")
def booted(linux: Linux, tmp_path_factory: pytest.TempPathFactory) -> Booted:
    assets, initrd = linux
    out = tmp_path_factory.mktemp("symbols")
    args = f'{LINUX_ARGS} quiet {ga.CMD_VAR}="{KALLSYMS_CMD}"'
    trace = out / "linux.hvt"
    with Capture.start(
        backend="qemu", cpus=2, memory_mb=512, guest=GuestSpec(assets.kernel, initrd, args), timeout=180
    ) as cap:
        cap.record(trace)
        console = cap.console
    lines = kallsyms_lines(console)
    text = [int(ln.split()[0], 16) for ln in lines if ln.endswith(" _text")]
    assert len(text) == 1, console[-40:]
    slide = text[0] - link_text_address(assets.kernel)
    kallsyms = out / "kallsyms"
    kallsyms.write_text("\n".join(lines) + "\n")
    system_map = out / "System.map"
    # absolute symbols (per-CPU offsets) do not move with the kernel
    moved = (f"{int(a, 16) - (0 if t in 'aA' else slide):016x} {t} {n}" for a, t, n in map(str.split, lines))
    system_map.write_text("\n".join(moved) + "\n")
    return Booted(trace, kallsyms, system_map, slide)


def locations(rep: dict[str, Any], reason: str, kind: str | None = None) -> list[str]:
    """The report's top locations of one reason (and kind: SVM's MSR reason is both read and write)."""
    rows = [r for r in rep["symbols"]["top_locations"] if r["reason_name"] == reason]
    return [loc["location"] for r in rows if kind in (None, r["kind"]) for loc in r["locations"]]


def slide_of(app: HvTraceApp) -> int | None:
    """The KASLR slide the TUI found, None while unknown."""
    found = app.slide.found if app.slide is not None else None
    return found.value if found is not None else None


def test_report_finds_the_real_kaslr_slide_and_names_cpuid_and_msr_functions(
    hvtrace_run: RunFn, booted: Booted
) -> None:
    run = hvtrace_run("report", str(booted.trace), "--symbols", str(booted.system_map))
    assert run.returncode == 0, run.describe()
    m = SLIDE_RE.search(run.stdout)
    assert m is not None, run.stdout[-3000:]
    assert int(m.group(1), 16) == booted.slide, (m.group(0), hex(booted.slide))
    assert "top guest locations per reason" in run.stdout

    rep = json.loads(
        hvtrace_run("report", str(booted.trace), "--json", "--symbols", str(booted.system_map)).stdout
    )
    assert rep["symbols"]["slide"] == booted.slide
    cpuid = locations(rep, "CPUID")
    rdmsr = locations(rep, "MSR", "MSR_READ")
    wrmsr = locations(rep, "MSR", "MSR_WRITE")
    assert cpuid[0].startswith("native_cpuid+0x"), cpuid  # paravirt: Linux's CPUIDs run in native_cpuid
    assert any(loc.startswith("native_read_msr") for loc in rdmsr), rdmsr
    assert any(loc.startswith("native_write_msr") for loc in wrmsr), wrmsr


def test_a_kallsyms_dump_of_the_same_boot_needs_no_slide(hvtrace_run: RunFn, booted: Booted) -> None:
    run = hvtrace_run("report", str(booted.trace), "--symbols", str(booted.kallsyms))
    assert run.returncode == 0, run.describe()
    m = SLIDE_RE.search(run.stdout)
    assert m is not None, run.stdout[-2000:]
    assert int(m.group(1), 16) == 0, m.group(0)
    assert re.search(r"^    native_cpuid\+0x[0-9a-f]+ ", run.stdout, re.MULTILINE), run.stdout[-3000:]


def test_export_csv_has_a_symbol_column(hvtrace_run: RunFn, booted: Booted, tmp_path: Path) -> None:
    out = tmp_path / "linux.csv"
    run = hvtrace_run(
        "export", str(booted.trace), "--format", "csv", "-o", str(out), "--symbols", str(booted.system_map)
    )
    assert run.returncode == 0, run.describe()
    assert f"KASLR slide {booted.slide:#x}" in run.stderr
    with out.open() as fh:
        rows = list(csv.DictReader(fh))
    cpuid = [r for r in rows if int(r["kind"]) == HvExitKind.CPUID]
    named = [r["symbol"] for r in cpuid if r["symbol"].startswith("native_cpuid+")]
    assert len(named) > 10, {r["symbol"] for r in cpuid}
    assert all(r["symbol"] == "" for r in cpuid if int(r["rip"]) < 1 << 47)  # user space: no kernel symbol


def test_capture_stored_kernel_code_read_through_the_guest_page_tables(booted: Booted) -> None:
    tf = TraceFile.open(booted.trace)
    table = load(booted.kallsyms)  # run-time addresses
    native_cpuid = table.address("native_cpuid")
    assert native_cpuid is not None
    recs = tf.records()
    cpuid = recs[(recs["kind"] == HvExitKind.CPUID) & (recs["rip"] >= native_cpuid)]
    rec = cpuid[cpuid["rip"] < native_cpuid + 0x40][0]
    assert int(rec["cr3"]) != 0
    cache = CodeCache(CodeMap(tf.code))
    assert cache.text(int(rec["rip"]), int(rec["insn_len"]), int(rec["cr3"])) == "cpuid"
    # user-space CPUIDs (busybox's libc) are stored per address space, found by (cr3, rip); a process
    # that exited before the capture read its batch left no code ("?"), never another address space's
    user = recs[(recs["kind"] == HvExitKind.CPUID) & (recs["rip"] < 1 << 47) & (recs["cr3"] != 0)]
    texts = [cache.text(int(u["rip"]), int(u["insn_len"]), int(u["cr3"])) for u in user]
    assert set(texts) <= {"cpuid", "?"}, set(texts)
    assert texts.count("cpuid") > len(texts) // 2, texts


def test_tui_replay_shows_symbols_instructions_and_handling_time(booted: Booted) -> None:
    src = ReplaySource(booted.trace)

    async def scenario() -> None:
        app = HvTraceApp(src, symbols=load(booted.system_map))
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: src.engine is not None and app.connected, 20, "the replay to open")
            assert src.engine is not None
            src.seek_index(len(src.engine))  # everything played: the views rebuilt from all records
            await until(pilot, lambda: slide_of(app) is not None, 20, "the slide")
            assert slide_of(app) == booted.slide
            await until(pilot, lambda: "CPUID" in table_rows(app), 20, "the CPUID row")
            row = table_rows(app)["CPUID"]
            assert re.fullmatch(r"[0-9.]+(ns|us|ms|s)", row[5]), row  # handling time, in seconds (tsc_hz)
            recs = src.engine.records
            kernel_cpuid = recs[(recs["kind"] == HvExitKind.CPUID) & (recs["rip"] >= 0xFFFF_8000_0000_0000)]
            line = app._format(kernel_cpuid[len(kernel_cpuid) // 2])
            assert re.search(r" cpuid +<native_cpuid\+0x[0-9a-f]+> ", line), line

    try:
        asyncio.run(scenario())
    finally:
        src.close()


def test_tui_live_finds_the_slide_and_disassembles_kernel_exits(linux: Linux, booted: Booted) -> None:
    """A second boot (its own KASLR slide): the live TUI finds the slide from the records as they arrive
    and shows a kernel CPUID exit as ``cpuid <native_cpuid+0x..>``, the instruction read from the running
    guest's memory through its page tables (the record's CR3). /init keeps running so memory stays up."""
    assets, initrd = linux
    args = f'{LINUX_ARGS} quiet {ga.CMD_VAR}="while true; do nproc; sleep 1; done"'
    src = LiveSource.start(
        backend="qemu", cpus=1, memory_mb=512, guest=GuestSpec(assets.kernel, initrd, args), timeout=300
    )

    async def scenario() -> None:
        app = HvTraceApp(src, symbols=load(booted.system_map))
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: slide_of(app) is not None, 180, "the slide")
            slide = slide_of(app)
            assert slide is not None
            assert slide % 0x20_0000 == 0
            recs = app.recent.rows(0, len(app.recent))
            kernel = recs[(recs["kind"] == HvExitKind.CPUID) & (recs["rip"] >= 0xFFFF_8000_0000_0000)]
            lines = [app._format(r) for r in kernel[-20:]]
            assert any(re.search(r" cpuid +<native_cpuid\+0x[0-9a-f]+> ", ln) for ln in lines), lines

    try:
        asyncio.run(scenario())
    finally:
        src.close()
