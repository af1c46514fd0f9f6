"""The gdb face live through the hypervisor's resident gdb stub (issue 17), on Bochs (VT-x: the stub
on COM3 behind hvtrace's relay, `--gdb`) and on QEMU (SVM: COM3 as QEMU's tcp server, `--gdb-stub hv`):
the flows test_gdb_qemu.py runs on QEMU's own gdbstub.

One session (2 CPUs, storm=1) per back end serves the module: every CPU is a thread; hv-break stops at
the CPUID exit with the decoded record; hv-vmcs shows the snapshot, and on VT-x `monitor vmread` and
hv-vmcs --live read EXIT_REASON again by VMREAD on the stopped CPU: the same value; hv-ept walks and
summarises the stage-2 tables; hv-exits lists records; delete + continue lets exits flow and an MI
-exec-interrupt (Ctrl-C) stops them; stepi of the CPU that stop parked with a kick executes one
instruction; detach leaves the guest running with no break armed, and a second gdb attaches again;
gdb's kill ends the machine.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest

from hvtrace import abi
from hvtrace.abi import HvExitKind
from hvtrace.gdbmi import Gdb, GdbError, Reply, is_stopped, stop_function
from hvtrace.launch.bochs import BochsSession
from hvtrace.launch.qemu import QemuSession
from tests.integration.conftest import wait_for

# Each step waits on the emulated 115200-baud UART under a loaded host: the global 300 s is too short.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]
EXITS_RE = re.compile(r"^CPU (\d+) (?:VMX|SVM) .* exits (\d+)", re.MULTILINE)
Live = tuple[BochsSession | QemuSession, Gdb]
#: The storm's CPUID exit as hv-exits names it, per back end.
CPUID_EXIT = {"bochs": "CPUID(0xa)/CPUID", "qemu": "CPUID(0x72)/CPUID"}


def attach(session: BochsSession | QemuSession) -> Gdb:
    gdb = Gdb()
    gdb.load()
    gdb.ok("-gdb-set remotetimeout 120")
    try:
        gdb.ok(f"target remote 127.0.0.1:{session.gdb_port}", timeout=180)
    except GdbError as e:  # say whether the emulator still runs, and what the hypervisor said last
        gdb.close()
        hv = "\n".join(session.hv_lines[-30:])
        status = session.proc.poll() if session.proc else "not started"
        pytest.fail(f"{e}\nemulator exit status: {status}\nhypervisor's last lines:\n{hv}")
    return gdb


@pytest.fixture(
    scope="module",
    params=[pytest.param("bochs", marks=pytest.mark.bochs), pytest.param("qemu", marks=pytest.mark.qemu)],
)
def live(request: pytest.FixtureRequest) -> Iterator[Live]:
    session: BochsSession | QemuSession
    if request.param == "bochs":
        session = BochsSession(gdb_port=0, cpus=2, memory_mb=64, cmdline="storm=1", timeout=1800)
    else:
        session = QemuSession(
            gdb_port=0, gdb_stub="hv", cpus=2, memory_mb=64, cmdline="storm=1", timeout=1800
        )
    gdb: Gdb | None = None
    try:
        session.start()
        wait_for(lambda: any("storm:" in line for line in session.lines), 600, "the storm")
        gdb = attach(session)
        yield session, gdb
    finally:
        if gdb is not None:
            gdb.close()
        session.close()


def stop_text(gdb: Gdb, first: str, want: str, timeout: float = 300) -> str:
    """The stop's console text until ``want`` appears: the extension's summary follows the stop record
    and reads memory through the emulated UART first (slower than QEMU's gdbstub)."""
    text, deadline = first, time.monotonic() + timeout
    while want not in text and time.monotonic() < deadline:
        text += "".join(str(r["payload"]) for r in gdb.read(1.0) if r["type"] == "console")
    return text


def exit_counts(text: str) -> dict[int, int]:
    return {int(c): int(n) for c, n in EXITS_RE.findall(text)}


def test_every_cpu_is_a_thread(live: Live) -> None:
    _, gdb = live
    threads = gdb.ok("info threads", timeout=180)
    assert re.search(r"^\*? +1 +Thread 1 ", threads, re.MULTILINE), threads
    assert re.search(r"^\*? +2 +Thread 2 ", threads, re.MULTILINE), threads
    assert "Thread 3" not in threads


def test_break_cpuid_stops_with_the_decoded_exit_and_the_vmcs(live: Live) -> None:
    _, gdb = live
    assert "hv-break 0: cpuid arg0=0x1" in gdb.ok("hv-break cpuid --leaf 1", timeout=180)
    stop = gdb.continue_until_stop(timeout=600)
    frames = [r["payload"] for r in stop.records if r["type"] == "notify" and r["message"] == "stopped"]
    assert frames[0]["frame"]["func"] == "hv_break_hit", frames
    text = stop_text(gdb, stop.text, "leaf 0x1 subleaf")
    assert re.search(r"hv-break 0 hit on CPU \d: CPUID", text), text
    assert "leaf 0x1 subleaf" in text
    vmcs = gdb.ok("hv-vmcs", timeout=300)
    assert "why=BREAK" in vmcs
    if isinstance(live[0], QemuSession):  # SVM: the VMCB's EXITCODE; no VMREAD to compare with
        assert re.search(r"EXITCODE\s+\+070\s+0x0+72", vmcs), vmcs
        return
    snap = re.search(r"VM_EXIT_REASON\s+\S+\s+(0x[0-9a-f]+)", vmcs)
    assert snap is not None, vmcs
    assert int(snap.group(1), 16) & 0xFFFF == 10, vmcs
    # Live: VMREAD of EXIT_REASON (field 0x4402) on the stopped CPU, through the stub's monitor command.
    # (MI prints a monitor command's answer as target output: through gdb.execute it is text.)
    live_reason = gdb.ok('python print(gdb.execute("monitor vmread 4402", to_string=True))', timeout=120)
    assert re.search(r"^4402 a$", live_reason, re.MULTILINE), live_reason
    # hv-vmcs --live: every snapshot field read again by VMREAD on the stopped CPU.
    live_view = gdb.ok("hv-vmcs --exit --live", timeout=600)
    m = re.search(r"VM_EXIT_REASON\s+0x4402  snapshot (0x[0-9a-f]+)  live (0x[0-9a-f]+)", live_view)
    assert m is not None, live_view
    assert int(m.group(1), 16) == int(m.group(2), 16) == 10, live_view
    assert re.search(r"live VMREAD on CPU \d: \d+ fields, \d+ equal to the snapshot", live_view), live_view


def test_ept_walk_and_summary(live: Live) -> None:
    _, gdb = live
    walk = gdb.ok("hv-ept 0x100000", timeout=300)
    assert re.search(r"(EPT|NPT) walk of GPA 0x100000", walk), walk
    assert "GPA 0x100000 -> HPA 0x100000  rwx WB" in walk
    summary = gdb.ok("hv-ept --summary", timeout=600)
    assert re.search(r"^0x0+100000-0x[0-9a-f]+ rwx WB", summary, re.MULTILINE) or " WB " in summary, summary


def test_exits_lists_decoded_records(live: Live) -> None:
    session, gdb = live
    text = gdb.ok("hv-exits -n 3 --no-disasm", timeout=300)
    lines = [ln for ln in text.splitlines() if ln.startswith("CPU")]
    assert len(lines) == 3, text
    assert all(CPUID_EXIT[session.backend] in ln for ln in lines), text


HIT_STOP = (
    "python from hvtrace.gdbext.cmd_break import HitBreakpoint; "
    "print('stop:', [b.stop() for b in gdb.breakpoints() if isinstance(b, HitBreakpoint)])"
)


def test_a_hit_of_a_table_rewritten_since_resumes(live: Live) -> None:
    """Two CPUs may match at once; the second to stop may have been parked while the tool rewrote the
    table. hv_break_hit's generation argument (RCX) tells gdb: at a real hit its breakpoint stops, and the
    same hit, once the table has a newer generation, is resumed with a note instead."""
    _, gdb = live
    gdb.ok("hv-break delete all", timeout=120)
    gdb.ok("hv-break cpuid --leaf 2", timeout=180)
    stop = gdb.continue_until_stop(timeout=600)
    assert re.search(r"hv-break 0 hit on CPU \d: CPUID", stop_text(gdb, stop.text, "hit on")), stop.text
    assert "stop: [True]" in gdb.ok(HIT_STOP, timeout=120)
    gdb.ok("hv-trace-point msr_read", timeout=180)  # a new generation of the table
    rewritten = gdb.ok(HIT_STOP, timeout=120)
    assert "stop: [False]" in rewritten, rewritten
    note = r"CPU \d matched table generation \d+, rewritten since \(\d+\): resumed"
    assert re.search(note, rewritten), rewritten
    gdb.ok("hv-break delete all", timeout=120)


HITS_RE = re.compile(r"^\s+(\d+): .*  hits (\d+)$", re.MULTILINE)


def test_break_condition_on_registers_cpuid_does_not_use(live: Live) -> None:
    """The storm's CPUID carries R15 = HV_STORM_MARK and R12 = its round (abi.h). VT-x's exit stub
    leaves RBP and R12-R15 to its C (vmx/exit_fast.c), which stores them into the frame before an armed
    break looks at it: a condition on them holds with the mark and never without, and the hit shows
    them."""
    _, gdb = live
    mark = abi.HV_STORM_MARK
    gdb.ok("hv-break delete all", timeout=120)
    assert "hv-break 0:" in gdb.ok(f"hv-break cpuid if r15 != {mark:#x}", timeout=180)
    assert "hv-break 1:" in gdb.ok(f"hv-break cpuid if r15 == {mark:#x} && leaf == 3", timeout=180)
    stop = gdb.continue_until_stop(timeout=600)
    text = stop_text(gdb, stop.text, "R15")
    assert re.search(r"hv-break 1 hit on CPU \d: CPUID", text), text
    assert f"R15 {mark:#018x}" in text, text
    r12 = re.search(r"R12 (0x[0-9a-f]{16})", text)
    assert r12 is not None, text
    assert int(r12.group(1), 16) & 7 == 3, text  # the round whose leaf is 3
    hits = {int(i): int(n) for i, n in HITS_RE.findall(gdb.ok("hv-break list", timeout=180))}
    assert hits.get(0) == 0, hits
    assert hits.get(1, 0) >= 1, hits
    gdb.ok("hv-break delete all", timeout=120)


def test_hardware_breakpoint_and_watchpoint_stop_in_the_exit_path(live: Live) -> None:
    """Z1 and Z2 through the debug registers (core/gdbstub/debugregs.c): `hbreak` on the CPUID exit's
    handler and a `watch` on a CPU's exit counter stop there; deleted, they stop nothing."""
    _, gdb = live
    gdb.ok("hv-break delete all", timeout=120)
    assert "image at link address" in gdb.ok("hv-symbols", timeout=300)
    assert "Hardware assisted breakpoint" in gdb.ok("hbreak exit_cpuid", timeout=120)
    record = gdb.continue_until_stop(timeout=600).stop()
    assert record is not None
    assert record["payload"]["reason"] == "breakpoint-hit", record
    assert stop_function(record) == "exit_cpuid", record
    gdb.ok("delete", timeout=120)
    cpuid_exits = f"cpus[1]->exit_kinds[{HvExitKind.CPUID.value}]"  # the storm's CPUID exits
    assert "Hardware watchpoint" in gdb.ok(f"watch -l {cpuid_exits}", timeout=120)
    record = gdb.continue_until_stop(timeout=600).stop()
    assert record is not None
    payload = record["payload"]
    assert payload["reason"] == "watchpoint-trigger", record
    # trace.h counts the exit (the exit CPU 1 was parked in may count once more before its next exit
    # loads the debug registers)
    assert 0 < int(payload["value"]["new"]) - int(payload["value"]["old"]) <= 2, record
    assert payload["thread-id"] == "2", record  # CPU 1 writes its own counter
    gdb.ok("delete", timeout=120)


#: The function every exit of every CPU enters, per back end.
DISPATCH = {"bochs": "vmx_exit_dispatch", "qemu": "svm_exit_dispatch"}


def test_continue_from_a_breakpoint_while_the_other_cpu_hits_another(live: Live) -> None:
    """Each continue steps the stopped CPU over its breakpoint with vCont;s:TID alone, the other
    breakpoint (a hardware one: it stays inserted) in place, while the other CPU runs into it: that
    stop must wait for the step's (gdb 13 aborts on another thread's stop in the middle of a step over
    a breakpoint: infrun.c finish_step_over, seen in CI). Every continue ends on one of the two, and
    gdb lives on."""
    session, gdb = live
    if session.backend == "bochs":
        # Under Bochs 2.7 the sequence (with or without this fix) leaves CPU 1 parked for good after a
        # step off the hardware breakpoint, and the module's later tests would inherit it: its own work.
        pytest.skip("Bochs 2.7: a CPU stepped off a hardware breakpoint stays parked (known stub defect)")
    assert "image at link address" in gdb.ok("hv-symbols", timeout=300)
    places = {DISPATCH[session.backend], "exit_cpuid"}
    assert "Breakpoint" in gdb.ok(f"break {DISPATCH[session.backend]}", timeout=120)
    assert "Hardware assisted breakpoint" in gdb.ok("hbreak exit_cpuid", timeout=120)
    seen = set()
    for _ in range(12):
        record = gdb.continue_until_stop(timeout=600).stop()
        assert record is not None
        assert record["payload"]["reason"] == "breakpoint-hit", record
        seen.add(stop_function(record))
    assert gdb.alive()
    assert seen == places, seen
    gdb.ok("delete", timeout=120)


def test_delete_continue_and_interrupt(live: Live) -> None:
    _, gdb = live
    assert "0 armed" in gdb.ok("hv-break delete all", timeout=120)
    before = exit_counts(gdb.ok("hv-cpus", timeout=120))
    stop = gdb.run_for(3.0)  # continue, then -exec-interrupt: the stub notices 0x03 at an exit
    assert "hit on CPU" not in stop.text
    assert any(r["type"] == "notify" and r["message"] == "stopped" for r in stop.records), stop.records
    after = exit_counts(gdb.ok("hv-cpus", timeout=120))
    assert sorted(before) == sorted(after) == [0, 1]
    assert any(after[c] > before[c] for c in before), (before, after)


def stopped_threads(reply: Reply) -> list[str]:
    """The thread of each *stopped record of a reply."""
    return [str(r["payload"].get("thread-id")) for r in reply.records if is_stopped(r)]


def expected_after_step(gdb: Gdb) -> tuple[int, set[int]]:
    """The PC, and where one executed instruction can take it: the next instruction, a RET's return
    address, a direct branch's target (both ways for a conditional one)."""
    listing = gdb.ok("x/2i $pc", timeout=120)
    addrs = [int(a, 16) for a in re.findall(r"^(?:=>)?\s*(0x[0-9a-f]+)", listing, re.MULTILINE)]
    assert len(addrs) == 2, listing
    first = listing.splitlines()[0]
    mnemonic = first.split(":", 1)[1].split()[0]
    if mnemonic.startswith("ret"):
        top = gdb.ok("p/x *(unsigned long *)$sp", timeout=120)
        return addrs[0], {int(top.split("=")[1], 16)}
    target = re.search(r"\s(0x[0-9a-f]+)(?: <[^>]*>)?$", first)
    if mnemonic.startswith("jmp") and target:
        return addrs[0], {int(target.group(1), 16)}
    if mnemonic.startswith(("j", "call")) and target:
        return addrs[0], {addrs[1], int(target.group(1), 16)}
    return addrs[0], {addrs[1]}


def test_step_of_a_cpu_parked_by_a_kick_executes_one_instruction(live: Live) -> None:
    session, gdb = live
    # A stop by Ctrl-C: the CPU that read gdb's byte stops at gdbstub_break (the stop's thread); the
    # other one is parked by that stop's kick, inside the hypervisor's C code.
    owner = stopped_threads(gdb.run_for(1.0))
    assert owner, "no stop after the interrupt"
    tid = 3 - int(owner[-1])
    gdb.ok(f"thread {tid}", timeout=120)
    before, allowed = expected_after_step(gdb)
    try:
        stop = gdb.step_instruction(timeout=300)
    except TimeoutError as e:
        pytest.fail(f"{e}\nhypervisor's last lines:\n" + "\n".join(session.hv_lines[-30:]))
    assert stopped_threads(stop) == [str(tid)], stop.records
    after = int(gdb.ok("p/x $pc", timeout=120).split("=")[1], 16)
    assert after in allowed, (hex(before), hex(after), [hex(a) for a in allowed])


def test_detach_leaves_the_guest_running_and_no_break_armed(live: Live) -> None:
    session, gdb = live
    gdb.ok("hv-break cpuid --leaf 1", timeout=120)
    before = exit_counts(gdb.ok("hv-cpus", timeout=120))
    gdb.ok("detach", timeout=120)
    gdb.close()
    again = attach(session)
    try:
        listed = again.ok("hv-break list", timeout=180)
        assert "0 armed" in listed or "no exit break" in listed, listed
        cpus = again.ok("hv-cpus", timeout=120)
        after = exit_counts(cpus)
        if not all(after[c] > before[c] for c in before):  # where each CPU stands, for the report
            where = again.ok("info threads", timeout=180)
            pytest.fail(f"a CPU made no exit after the detach: {before} -> {after}\n{cpus}\n{where}")
    finally:
        again.close()


def test_kill_ends_the_machine(live: Live) -> None:
    """gdb's kill (the `k` packet) ends the run with the hypervisor's status line, as it ends QEMU.
    Last in the module: the session ends here."""
    session, _ = live
    gdb = attach(session)
    try:
        gdb.cmd("kill", timeout=120)
    finally:
        gdb.close()
    wait_for(lambda: session.status is not None, 300, "the hypervisor's status line after kill")
    result = session.wait()
    assert result.status is not None, result
    assert (result.status.reason, result.status.result) == ("gdb_kill", "pass"), result
