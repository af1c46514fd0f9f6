"""Guest symbol tables (System.map, kallsyms, ELF), the KASLR slide search and the report's locations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hvtrace.abi import HvExitKind, HvVendor
from hvtrace.decode.vendor import reason_code
from hvtrace.exitcodes import ExitCode
from hvtrace.kaslr import NO_SLIDE_LINE, SlideEvidence, apply_slide, find_slide
from hvtrace.paths import repo_root
from hvtrace.symbols import load
from hvtrace.trace.errors import TraceError
from hvtrace.trace.records import RECORD_DTYPE, Records
from hvtrace.trace.report_symbols import LocationCounts, symbols_section, top_locations

LINK = 0xFFFF_FFFF_8100_0000
SYSTEM_MAP = f"""\
{LINK:016x} T _text
{LINK + 0x100:016x} T startup_64
{LINK + 0x1000:016x} t native_cpuid
{LINK + 0x1040:016x} t native_read_msr
{LINK + 0x1080:016x} t native_write_msr
{LINK + 0x10C0:016x} D some_data
{LINK + 0x2000:016x} T entry_SYSCALL_64
{LINK + 0x3000:016x} T _etext
{LINK + 0x4000:016x} d late_data
"""


def write(tmp_path: Path, text: str, name: str = "System.map") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def recs_of(rows: list[dict[str, int]]) -> Records:
    out = np.zeros(len(rows), dtype=RECORD_DTYPE)
    for i, row in enumerate(rows):
        for k, v in row.items():
            out[i][k] = v
    return out


def test_system_map_lookup_bounds_by_next_symbol_data_and_end_markers(tmp_path: Path) -> None:
    t = load(write(tmp_path, SYSTEM_MAP))
    assert t.kind == "system.map"
    assert t.text(LINK + 0x100F) == "native_cpuid+0xf"
    assert t.text(LINK + 0x1040) == "native_read_msr+0x0"
    assert t.text(LINK + 0x10C4) == ""  # inside data: not blamed on native_write_msr
    assert t.text(LINK + 0x2FFF) == "entry_SYSCALL_64+0xfff"
    assert t.text(LINK + 0x3001) == ""  # after _etext
    assert t.text(LINK - 1) == ""
    assert t.address("entry_SYSCALL_64") == LINK + 0x2000
    t.slide = 0x1200000
    assert t.text(LINK + 0x1200000 + 0x1003) == "native_cpuid+0x3"
    names = t.names_of(np.array([LINK + 0x1200000 + 0x1003, 5, LINK + 0x1200000 + 0x1003], dtype=np.uint64))
    assert names.tolist() == ["native_cpuid+0x3", "", "native_cpuid+0x3"]


def test_kallsyms_dump_with_modules_and_restricted_addresses(tmp_path: Path) -> None:
    dump = SYSTEM_MAP + "ffffffffc0001000 t mod_fn\t[kvm]\nffffffffc0002000 t mod_fn2\t[kvm]\n"
    t = load(write(tmp_path, dump, "kallsyms.txt"))
    assert t.kind == "kallsyms"
    assert t.text(0xFFFF_FFFF_C000_2010) == "mod_fn2+0x10"  # a dump's last symbol reaches on
    zeros = "0000000000000000 T _text\n0000000000000000 t native_cpuid\n"
    with pytest.raises(TraceError) as e:
        load(write(tmp_path, zeros, "restricted"))
    assert e.value.code == ExitCode.BAD_DATA
    assert "kptr_restrict" in str(e.value)
    signed = "-00000000000001000 A per_cpu_thing\n" + SYSTEM_MAP  # not an address: skipped
    assert load(write(tmp_path, signed, "signed")).text(LINK + 0x1001) == "native_cpuid+0x1"
    with pytest.raises(TraceError) as e:
        load(write(tmp_path, "hello\n", "junk"))
    assert "no code symbols" in str(e.value)
    with pytest.raises(TraceError) as e:
        load(tmp_path / "missing")
    assert e.value.code == ExitCode.NO_INPUT


def test_elf_symbols_have_sizes() -> None:
    elf = repo_root() / "hv" / "build" / "hvtrace.elf"
    if not elf.exists():
        pytest.skip("hv/build/hvtrace.elf not built (make -C hv)")
    t = load(elf)
    assert t.kind == "elf"
    addr = t.address("memcpy")
    assert addr is not None
    size = int(t.sizes[t.names.index("memcpy")])
    assert size > 1
    assert t.text(addr + 1) == "memcpy+0x1"
    assert not t.text(addr + size).startswith("memcpy+")  # past the function's end


def test_slide_from_an_lstar_write(tmp_path: Path) -> None:
    t = load(write(tmp_path, SYSTEM_MAP))
    slide = 0x2E00000
    recs = recs_of([{"kind": HvExitKind.MSR_WRITE, "arg0": 0xC000_0082, "arg1": LINK + 0x2000 + slide}])
    found = find_slide(t, recs)
    assert found is not None
    assert found.value == slide
    assert found.line() == "symbols: KASLR slide 0x2e00000 (from MSR_LSTAR write = entry_SYSCALL_64)"


def test_slide_from_cpuid_and_msr_exit_rips(tmp_path: Path) -> None:
    t = load(write(tmp_path, SYSTEM_MAP))
    slide = 0x1C400000
    recs = recs_of(
        [
            {"kind": HvExitKind.CPUID, "rip": LINK + slide + 0x100F},
            {"kind": HvExitKind.MSR_READ, "rip": LINK + slide + 0x1043},
            {"kind": HvExitKind.MSR_WRITE, "rip": LINK + slide + 0x1084, "arg0": 0x10},
            {"kind": HvExitKind.CPUID, "rip": 0x40F2E8},  # user space: ignored
            # a misaligned LSTAR value (not a 2 MiB multiple away) is not believed
            {"kind": HvExitKind.MSR_WRITE, "arg0": 0xC000_0082, "arg1": LINK + 0x2000 + 0x1234},
        ]
    )
    line = apply_slide(t, recs)
    assert t.slide == slide
    assert line.startswith("symbols: KASLR slide 0x1c400000 (from 3 CPUID/MSR exit RIPs in native_cpuid")
    assert t.text(LINK + slide + 0x100F) == "native_cpuid+0xf"


def test_no_slide_found(tmp_path: Path) -> None:
    t = load(write(tmp_path, SYSTEM_MAP))
    t.slide = 0x400000
    recs = recs_of([{"kind": HvExitKind.CPUID, "rip": 0x1000}, {"kind": HvExitKind.HLT, "rip": LINK + 5}])
    assert find_slide(t, recs) is None
    assert apply_slide(t, recs) == NO_SLIDE_LINE
    assert t.slide == 0


def test_top_locations_per_reason_biggest_first(tmp_path: Path) -> None:
    t = load(write(tmp_path, SYSTEM_MAP))
    vendor = int(HvVendor.SVM)
    cpuid_reason = reason_code(vendor, "CPUID")
    assert cpuid_reason is not None
    cpuid = {"kind": HvExitKind.CPUID, "reason": cpuid_reason}
    rows = [{**cpuid, "rip": LINK + 0x1000 + i % 2} for i in range(6)]
    rows += [{**cpuid, "rip": 0x1234}]
    rows += [{"kind": HvExitKind.MSR_READ, "reason": 1, "rip": LINK + 0x1041}]
    counts = LocationCounts()
    recs = recs_of(rows)
    counts.add(recs[:3])  # chunk by chunk
    counts.add(recs[3:])
    section = top_locations(counts, t, vendor)
    assert [r["count"] for r in section] == [7, 1]
    assert section[0]["reason_name"] == "CPUID"
    got = [(loc["location"], loc["count"]) for loc in section[0]["locations"]]
    assert got == [("native_cpuid+0x0", 3), ("native_cpuid+0x1", 3), ("0x1234", 1)]
    assert section[1]["locations"][0]["location"] == "native_read_msr+0x1"


def test_slide_evidence_is_bounded_and_deduplicated(tmp_path: Path) -> None:
    t = load(write(tmp_path, SYSTEM_MAP))
    slide = 0x600000
    at = {"kind": HvExitKind.CPUID, "rip": LINK + slide + 0x1003}
    msr = {"kind": HvExitKind.MSR_READ, "rip": LINK + slide + 0x1041, "arg0": 0x10}
    ev = SlideEvidence()
    assert ev.add(recs_of([at] * 1000 + [{"kind": HvExitKind.CPUID, "rip": 0x1000}]))
    assert not ev.add(recs_of([at] * 10))  # nothing new
    assert ev.add(recs_of([msr, {"kind": HvExitKind.MSR_WRITE, "arg0": 0x10, "arg1": 5}]))
    assert len(ev.records()) == 2  # one per (kind, kernel RIP); other MSR writes are no evidence
    section = symbols_section([recs_of([at] * 5), recs_of([msr])], t, int(HvVendor.SVM))
    assert section["slide"] == slide
    assert section["slide_line"].startswith("symbols: KASLR slide 0x600000 (from 2 CPUID/MSR exit RIPs")
