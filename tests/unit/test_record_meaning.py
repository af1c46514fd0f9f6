"""The shared record meaning and vendor objects: one header check for gdb and capture, ring slots taken
only when their seq holds, and what each back end answers (values from the SDM / APM)."""

from __future__ import annotations

import ctypes
import struct

import pytest

from gdbext import model
from hvtrace import abi
from hvtrace.decode import record_meaning
from hvtrace.decode.vendor import SVM, VMX, vendor_of
from hvtrace.exitcodes import ExitCode
from hvtrace.trace.discovery import parse_header
from hvtrace.trace.errors import TraceError

SIZE = ctypes.sizeof(abi.HvDiscovery)


def header(**fields: int) -> bytes:
    h = abi.HvDiscovery(magic=abi.HV_DISCOVERY_MAGIC, abi_version=abi.HV_ABI_VERSION, header_size=SIZE)
    for name, value in fields.items():
        setattr(h, name, value)
    return bytes(h)


@pytest.mark.parametrize(
    ("fields", "text", "code"),
    [
        ({"magic": 0x1234}, "no discovery magic (read 0x1234)", ExitCode.NO_TRACE_HEADER),
        ({"abi_version": 9}, "hypervisor ABI version 9", ExitCode.ABI_MISMATCH),
        (
            {"header_size": SIZE + 8},
            f"discovery header size {SIZE + 8}, expected {SIZE}",
            ExitCode.ABI_MISMATCH,
        ),
        ({"record_size": 32}, "record size 32, expected 64", ExitCode.ABI_MISMATCH),
        ({"cpu_count": 65}, "implausible CPU count 65", ExitCode.BAD_DATA),
    ],
)
def test_gdb_and_capture_reject_the_same_headers_in_the_same_words(
    fields: dict[str, int], text: str, code: ExitCode
) -> None:
    """Before, gdb checked magic and version only: a header of another size was read field by field."""
    data = header(**fields)
    with pytest.raises(model.HvError) as g:
        model.parse_discovery(data, 0x1000)
    with pytest.raises(TraceError) as c:
        parse_header(data, 0x1000, "scan", "ram")
    assert text in str(g.value)
    assert text in c.value.message
    assert c.value.code == code


def test_a_header_before_tracing_starts_is_valid() -> None:
    """hv/core/trace.c sets record_size when tracing starts; discovery.c sets the rest statically."""
    assert model.parse_discovery(header(), 0x1000).record_size == 0
    assert model.parse_discovery(header(record_size=64), 0x1000).header_size == SIZE


def ring_memory(cap: int, seqs: dict[int, int]) -> bytearray:
    """Slots of a ring (no header) holding seq numbers: slot -> seq."""
    mem = bytearray(cap * abi.HV_RECORD_SIZE)
    for slot, seq in seqs.items():
        struct.pack_into("<Q", mem, slot * abi.HV_RECORD_SIZE, seq)
    return mem


def test_slot_runs_wrap_once() -> None:
    assert record_meaning.slot_runs(15, 4, 16) == [(15, 14, 2), (17, 0, 2)]
    assert record_meaning.slot_runs(1, 40, 16) == [(1, 0, 16)]  # never more than a ring


def test_read_records_skips_slots_rewritten_during_the_copy() -> None:
    """The producer writes seq = 0, the fields, seq = n (hv/core/ring.c): a slot whose seq changed
    between the copy and the re-read is being rewritten and is not returned."""
    cap = 8
    mem = ring_memory(cap, {s - 1: s for s in range(1, 9)})
    reads = 0

    def read(addr: int, n: int) -> bytes:
        nonlocal reads
        reads += 1
        data = bytes(mem[addr : addr + n])
        if reads == 1:  # after the first copy the producer starts rewriting slot 2 (its seq 3 -> 0)
            struct.pack_into("<Q", mem, 2 * abi.HV_RECORD_SIZE, 0)
        return data

    recs = record_meaning.read_records(read, 0, cap, 1, 5)
    assert [r.seq for r in recs] == [1, 2, 4, 5]


def test_read_records_skips_slots_that_hold_another_record() -> None:
    mem = ring_memory(4, {0: 5, 1: 2, 2: 3, 3: 4})  # slot 0 already holds record 5, not 1
    recs = record_meaning.read_records(lambda a, n: bytes(mem[a : a + n]), 0, 4, 1, 4)
    assert [r.seq for r in recs] == [2, 3, 4]


@pytest.mark.parametrize(("cap", "ok"), [(1, True), (4096, True), (0, False), (12, False), (1 << 25, False)])
def test_capacity_problem(cap: int, ok: bool) -> None:
    assert (record_meaning.capacity_problem(cap) is None) == ok


def test_vendor_objects_answer_what_differs() -> None:
    # SDM Vol. 3D Appendix B: GUEST_RIP is encoding 0x681E; APM Vol. 2 Table B-2: RIP at 0x578, RAX 0x5F8.
    vmcs = [(0x681E, 0x7C00)]
    vmcb = [(0x578, 0x7C00), (0x5F8, 0x2A)]
    assert VMX.guest_register(vmcs, "RIP") == SVM.guest_register(vmcb, "RIP") == 0x7C00
    assert VMX.guest_register(vmcs, "RAX") is None  # not in the VMCS: the exit frame holds it
    assert SVM.guest_register(vmcb, "RAX") == 0x2A
    assert VMX.guest_register(vmcs, "CR3") is None  # not in this snapshot
    assert (VMX.stage2_name, SVM.stage2_name, vendor_of(0).stage2_name) == ("ept", "npt", None)
    assert (VMX.snapshot_name, SVM.snapshot_name) == ("VMCS", "VMCB")
    assert vendor_of(abi.HvVendor.VMX) is VMX
    assert vendor_of(7).name == "VENDOR_7"
    none = vendor_of(0)
    assert {"cpuid", "ept_violation", "npf", "vmmcall"} <= set(none.reason_words())
    assert none.reason_name(0x72) == "REASON_0x72"
    with pytest.raises(ValueError, match="names no back end"):
        none.snapshot_view(vmcs)


def test_qualification_by_back_end() -> None:
    # SDM Table 28-5: OUT DX, AL to 0x3F8; APM 15.10.2: IN AL, 0x60 (TYPE=1, SZ8).
    assert "OUT port 0x03f8" in VMX.qualification(30, 0x03F8_0000, 0)
    assert "IN port 0x0060" in SVM.qualification(0x7B, 0x0060_0011, 0)
    assert VMX.qualification(10, 0, 0) == ""  # CPUID has no qualification
    assert vendor_of(0).qualification(30, 0x03F8_0000, 0) == ""
