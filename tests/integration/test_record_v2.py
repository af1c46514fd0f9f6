"""ABI v2 records from live runs (issue 15): every exit carries the TSC of the exit and of the guest's
resumption after it (handling time), and the guest's CR3 at the exit.

The self-test guest runs on the hypervisor's own page tables (it is the CPU's context after the blue
pill), so the CR3 every one of its exits must carry is known from outside the trace: the ELF symbol
`boot_pml4` moved by the slide the hypervisor printed at boot. Its CR3 writes store the CR3 it reads,
so each CR3_WRITE record's value (arg1) is that CR3 too.
"""

from __future__ import annotations

import pytest

from hvtrace.abi import HvExitKind
from hvtrace.paths import image_path
from hvtrace.relocation import slide_from_console
from hvtrace.trace.capture import Capture
from hvtrace.trace.discovery import elf_symbol
from hvtrace.trace.records import Records

pytestmark = [pytest.mark.slow]
PAGE_MASK = ~0xFFF


def boot_cr3(console: list[str]) -> int:
    link = elf_symbol(image_path(), "boot_pml4")
    slide = slide_from_console(console)
    assert link is not None
    assert slide is not None, console[:10]
    return link + slide


def assert_v2_records(recs: Records, cpus: int, cr3: int) -> None:
    assert sorted(set(recs["cpu"].tolist())) == list(range(cpus))
    for cpu in range(cpus):
        mine = recs[recs["cpu"] == cpu]
        mine = mine[mine["seq"].argsort()]
        exit_tsc = mine["tsc"].astype(object)
        resume_tsc = mine["tsc_resume"].astype(object)
        # Handling ends after it starts, and the next exit comes after the guest resumed.
        assert all(r > e > 0 for e, r in zip(exit_tsc, resume_tsc, strict=True)), cpu
        assert all(n >= r for r, n in zip(resume_tsc[:-1], exit_tsc[1:], strict=True)), cpu
        assert {int(c) & PAGE_MASK for c in mine["cr3"]} == {cr3}, (cpu, hex(cr3))
        writes = mine[(mine["kind"] == int(HvExitKind.CR_ACCESS)) & (mine["arg0"] == 3)]
        assert len(writes) >= 2  # the self-test's two CR3 writes (RDX and R15 forms)
        assert (writes["arg1"] == writes["cr3"]).all()


@pytest.mark.qemu
def test_qemu_selftest_records_carry_handling_time_and_cr3() -> None:
    with Capture.start(backend="qemu", cpus=2, boot_timeout=30) as cap:
        recs = cap.collect()  # until the run ends
        console = cap.console
    assert_v2_records(recs, 2, boot_cr3(console))


@pytest.mark.bochs
def test_bochs_selftest_records_carry_handling_time_and_cr3() -> None:
    with Capture.start(backend="bochs", cpus=2, memory_mb=32, timeout=180) as cap:
        recs = cap.collect()
        console = cap.console
    assert_v2_records(recs, 2, boot_cr3(console))
