"""The gdb face on a live QEMU session (AMD SVM back end, storm=1): pygdbmi drives real gdb.

One session serves the module: hv-break stops with the CPUID leaf, hv-vmcs decodes the VMCB, hv-ept
walks and summarises the NPT (checked against the memory map the hypervisor printed), hv-exits lists
records, hv-break delete all + continue lets exits flow again; and every error message.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from hvtrace.gdbmi import Gdb
from hvtrace.launch.qemu import QemuSession
from tests.integration.conftest import gdb_on

pytestmark = [pytest.mark.slow, pytest.mark.qemu]
MAP_RE = re.compile(r"^\s+\[mem (0x[0-9a-f]+)-(0x[0-9a-f]+)\] (\w+)")
RANGE_RE = re.compile(r"^(0x[0-9a-f]+)-(0x[0-9a-f]+) (\S{3}) (\w+)\s+(\d+ \w+)", re.MULTILINE)
EXITS_RE = re.compile(r"^CPU (\d+) SVM .* exits (\d+)", re.MULTILINE)
# capstone's line for the guest's CPUID (address, bytes, Intel mnemonic); gdb's own would be "0x...: cpuid".
CAPSTONE_CPUID_RE = re.compile(r"^\s+0x[0-9a-f]+: 0f a2 +cpuid$", re.MULTILINE)


@pytest.fixture(scope="module")
def live() -> Iterator[tuple[QemuSession, Gdb]]:
    session = QemuSession(cpus=2, memory_mb=128, cmdline="storm=1", timeout=300)
    with gdb_on(session, "storm:") as gdb:
        yield session, gdb


def exit_counts(text: str) -> dict[int, int]:
    return {int(c): int(n) for c, n in EXITS_RE.findall(text)}


def test_break_cpuid_leaf_stops_with_a_decoded_summary(live: tuple[QemuSession, Gdb]) -> None:
    _, gdb = live
    armed = gdb.ok("hv-break cpuid --leaf 1")
    assert "hv-break 0: cpuid arg0=0x1" in armed
    assert "0: cpuid arg0=0x1  hits 0" in gdb.ok("hv-break list")
    stop = gdb.continue_until_stop()
    frames = [r["payload"] for r in stop.records if r["type"] == "notify" and r["message"] == "stopped"]
    assert frames[0]["frame"]["func"] == "hv_break_hit", frames
    assert re.search(r"hv-break 0 hit on CPU \d: CPUID", stop.text), stop.text
    assert "CPUID(0x72)/CPUID" in stop.text
    assert "leaf 0x1 subleaf" in stop.text
    # The registers are those the guest resumes with: CPUID.1:ECX[31] (hypervisor present) set.
    rcx = re.search(r"RCX (0x[0-9a-f]{16})", stop.text)
    assert rcx is not None, stop.text
    assert int(rcx.group(1), 16) >> 31 & 1, stop.text
    # The guest instruction at RIP, disassembled by capstone from the repository's venv (gdb's Python
    # is the system Python: the extension adds .venv's site-packages).
    assert CAPSTONE_CPUID_RE.search(stop.text), stop.text
    assert "capstone not available" not in stop.text
    # The snapshot of the CPU that hit (the selected thread) is the VMCB at that CPUID exit.
    vmcb = gdb.ok("hv-vmcs")
    assert "why=BREAK" in vmcb
    assert re.search(r"EXITCODE\s+\+070\s+0x0+72", vmcb), vmcb
    assert "RIP" in vmcb
    guest = gdb.ok("hv-guest")
    assert "CR3 0x" in guest
    # after the handler: CPUID.1:EAX (family/model/stepping) replaced the leaf, RIP is past the 2-byte
    # CPUID (0F A2) the record points at
    assert "RAX 0x0000000000000001" not in guest
    rec_rip = re.search(r"rip=(0x[0-9a-f]+)", stop.text)
    guest_rip = re.search(r"RIP (0x[0-9a-f]+)", guest)
    assert rec_rip is not None, stop.text
    assert guest_rip is not None, guest
    assert int(guest_rip.group(1), 16) == int(rec_rip.group(1), 16) + 2
    assert "hits 1" in gdb.ok("hv-break list") or "hits 2" in gdb.ok("hv-break list")


def mi(gdb: Gdb, command: str) -> dict[str, Any]:
    """An MI command's result fields (^done), or an AssertionError with gdb's message."""
    r = gdb.cmd(command, drain=0)
    assert r.error is None, f"{command}: {r.error}"
    result = next(x for x in r.records if x["type"] == "result")
    fields: dict[str, Any] = result["payload"] or {}
    return fields


def test_mi_commands_answer_what_the_cli_prints_as_fields(live: tuple[QemuSession, Gdb]) -> None:
    """gdbext's MI commands (what the TUI's break controller uses): the same facts as hv-break's text,
    as MI fields. Still stopped at the previous test's hit of break 0."""
    _, gdb = live
    hit = mi(gdb, "-hv-exit-info")["hit"]
    # The CLI's account of the same stop: hv-context, the view the stop printed, from the same
    # hv_break_hit arguments of the thread gdb reported.
    shown = gdb.ok("hv-context").splitlines()
    assert shown[0] == f"hv-break {hit['number']} hit on CPU {hit['cpu']}: {hit['reason']}", (hit, shown)
    assert all(line in shown for line in hit["lines"]), (hit, shown)
    # hv-break list's "last hit" is the hypervisor's own (hv_breaks.last_hit / last_cpu, written by every
    # CPU that matches, just before it calls hv_break_hit): not necessarily the thread gdb reported. Both
    # CPUs run the storm's CPUID loop and may both match before the all-stop halts them (hits 2), the one
    # gdb did not report writing last. With one match the last hit is this stop's.
    screen = gdb.ok("hv-break list")
    m = re.search(r"last hit: entry (\d+) on CPU (\d+)\n  (\d+): cpuid arg0=0x1  hits (\d+)\n", screen)
    assert m is not None, screen
    last_entry, last_cpu, listed, hits = m.groups()
    assert last_entry == listed == hit["number"], (hit, screen)
    assert int(hits) in (1, 2), screen  # at most one match per CPU: each stops at hv_break_hit
    assert last_cpu == hit["cpu"] or int(hits) == 2, (hit, screen)
    assert hit["reason"] == "CPUID"
    assert any("CPUID(0x72)/CPUID" in line and "leaf 0x1 subleaf" in line for line in hit["lines"]), hit
    assert any(CAPSTONE_CPUID_RE.search(line) for line in hit["lines"]), hit
    armed = mi(gdb, "-hv-break-insert msr_write --msr 0xc0000080 --cpu 1")["break"]
    listed = mi(gdb, "-hv-break-list")
    assert listed["armed"] == "2"
    assert {"number": armed["number"], "what": armed["what"], "hits": "0"} in listed["breaks"]
    assert f"  {armed['number']}: {armed['what']}  hits 0" in gdb.ok("hv-break list")
    assert mi(gdb, f"-hv-break-delete {armed['number']}") == {"deleted": "1", "armed": "1"}
    r = gdb.cmd("-hv-break-insert nosuchreason", drain=0)
    assert (r.error or "").startswith("-hv-break-insert: unknown exit reason 'nosuchreason' ("), r.error
    r = gdb.cmd("-hv-break-delete 7", drain=0)
    assert r.error == "-hv-break-delete: no exit break 7 (see hv-break list)"


def test_ept_walk_and_summary_agree_with_the_memory_map(live: tuple[QemuSession, Gdb]) -> None:
    session, gdb = live
    walk = gdb.ok("hv-ept 0x100000")
    assert "NPT walk of GPA 0x100000" in walk
    assert "GPA 0x100000 -> HPA 0x100000  rwx WB" in walk
    summary = gdb.ok("hv-ept --summary")
    ranges = [(int(a, 16), int(b, 16), p, t) for a, b, p, t, _ in RANGE_RE.findall(summary)]
    assert ranges, summary
    mem = [
        (int(a, 16), int(b, 16), kind)
        for line in session.lines
        if (m := MAP_RE.match(line))
        for a, b, kind in [m.groups()]
    ]
    assert any(k == "usable" for *_, k in mem), session.lines[:20]

    def types_over(lo: int, hi: int) -> set[str]:
        return {t for a, b, _, t in ranges if a <= hi and b >= lo}

    for lo, hi, kind in mem:
        page_lo, page_hi = (lo + 0xFFF) & ~0xFFF, ((hi + 1) & ~0xFFF) - 1
        if page_hi <= page_lo:
            continue
        if kind == "usable":
            covered = sum(
                min(b, page_hi) - max(a, page_lo) + 1
                for a, b, p, t in ranges
                if t == "WB" and p == "rwx" and a <= page_hi and b >= page_lo
            )
            assert covered == page_hi - page_lo + 1, (hex(lo), hex(hi))
        else:
            assert "WB" not in types_over(page_lo, page_hi), (hex(lo), hex(hi), kind)
    only_uc = gdb.ok("hv-ept --summary --type UC --range 0-0xffffffff")
    assert "WB" not in only_uc.split(":", 1)[1]
    assert " UC " in only_uc


def test_exits_lists_decoded_records(live: tuple[QemuSession, Gdb]) -> None:
    _, gdb = live
    text = gdb.ok("hv-exits -n 5")
    lines = [ln for ln in text.splitlines() if ln.startswith("CPU")]
    assert len(lines) == 5, text
    assert all("CPUID(0x72)/CPUID" in ln and "leaf 0x" in ln for ln in lines), text
    assert len(CAPSTONE_CPUID_RE.findall(text)) == 5, text  # the guest instruction, by capstone
    one_cpu = gdb.ok("hv-exits -n 3 --cpu 1 --reason cpuid --no-disasm")
    assert [ln[:5] for ln in one_cpu.splitlines() if ln.startswith("CPU")] == ["CPU1 "] * 3


def test_delete_all_and_continue_lets_exits_flow(live: tuple[QemuSession, Gdb]) -> None:
    _, gdb = live
    assert "0 armed" in gdb.ok("hv-break delete all")
    before = after = exit_counts(gdb.ok("hv-cpus"))
    # Exits flow on every CPU: counts, not a rate (a rate is a benchmark's job). Each round
    # runs the VM a while and stops it again; a slow host only takes more rounds.
    for _ in range(20):
        stop = gdb.run_for(1.0)
        assert "hit on CPU" not in stop.text
        after = exit_counts(gdb.ok("hv-cpus"))
        if all(after[c] > before[c] + 100 for c in before):
            break
    assert sorted(before) == sorted(after) == [0, 1]
    assert all(after[c] > before[c] + 100 for c in before), (before, after)
    # stopped by an interrupt, not at a hit: -hv-exit-info says so instead of reading stray registers
    r = gdb.cmd("-hv-exit-info", drain=0)
    assert r.error == "-hv-exit-info: not stopped at hv_break_hit (an exit break's hit)"


def test_error_messages_are_one_line(live: tuple[QemuSession, Gdb]) -> None:
    _, gdb = live
    cases = {
        "hv-vmcs 7": "hv-vmcs: no CPU 7 (this target has 2 CPUs: 0-1)",
        "hv-guest x": "hv-guest: bad CPU number 'x' (expected a number, e.g. 0x1000 or 42)",
        "hv-break nosuchreason": "hv-break: unknown exit reason 'nosuchreason'",
        "hv-exits --reason bogus": "hv-exits: unknown exit reason 'bogus'",
        "hv-ept zzz": "hv-ept: bad guest-physical address 'zzz'",
        "hv-ept 0x1000000000000": "hv-ept: bad guest-physical address 0x1000000000000",
        "hv-ept": "hv-ept: which guest-physical address?",
        "hv-vmcs --bogus": "hv-vmcs: unknown option '--bogus'",
        "hv-break delete 5": "hv-break: no exit break 5",
        "hv-break cpuid --cpu 9": "hv-break: no CPU 9",
    }
    for command, message in cases.items():
        r = gdb.cmd(command)
        assert r.error is not None, command
        assert r.error.startswith(message), (command, r.error)
        assert "\n" not in r.error.strip()
    # A full table: 8 entries (never matching), then the 9th is refused; delete all cleans up.
    for _ in range(8):
        gdb.ok("hv-break msr_write --msr 0xdead")
    r = gdb.cmd("hv-break cpuid")
    assert r.error == "hv-break: break table full (8 entries): free one with hv-break delete N"
    assert "0 armed" in gdb.ok("hv-break delete all")


def test_help_and_completion(live: tuple[QemuSession, Gdb]) -> None:
    _, gdb = live
    text = gdb.ok("help hv")
    for name in ("hv-cpus", "hv-exits", "hv-vmcs", "hv-ept", "hv-break", "hv-guest", "set hv color"):
        assert name in text
    assert "Examples:" in gdb.ok("help hv-break")
    done = gdb.complete("hv-break msr_")
    assert "hv-break msr_read" in done
    assert "hv-break msr_write" in done
    assert gdb.complete("hv-vmcs --con") == ["hv-vmcs --controls"]
    gdb.ok("set hv color on")
    assert "\x1b[" in gdb.ok("hv-vmcs 0 --exit")
    gdb.ok("set hv color off")
    assert "\x1b[" not in gdb.ok("hv-vmcs 0 --exit")


def test_no_hypervisor_symbol() -> None:
    with Gdb() as gdb:
        gdb.load(elf=None)
        gdb.ok("file /bin/true")
        for command in ("hv-vmcs", "hv-cpus", "hv-ept 0x1000", "hv-exits", "hv-break cpuid", "hv-guest"):
            r = gdb.cmd(command)
            name = command.split()[0]
            assert r.error == f"{name}: no hvtrace hypervisor in this target: symbol hv_trace not found"


def test_image_without_a_running_hypervisor() -> None:
    with Gdb() as gdb:
        gdb.load()  # the ELF alone: hv_trace as linked, no CPU online, no snapshot, no stage 2
        assert (
            gdb.cmd("hv-vmcs").error
            == "hv-vmcs: no CPU is online in this target (hypervisor not started yet?)"
        )
        assert gdb.cmd("hv-ept 0x1000").error == (
            "hv-ept: no back end chosen yet (hv_trace.vendor is 0): no stage-2 tables"
        )
