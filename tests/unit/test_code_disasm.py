"""The guest instruction at an exit's RIP: capstone decoding, the per-RIP cache, the readers, the capture's
code map in trace files (with files that lack it), and the log column.

Expected decodings are the opcode tables: Intel SDM vol. 2 (CPUID = 0F A2, RDMSR = 0F 32, WRMSR = 0F 30,
VMCALL = 0F 01 C1) and AMD APM vol. 3 (VMMCALL = 0F 01 D9).
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from gdbext import disasm as gdb_disasm
from hvtrace import disasm
from hvtrace.abi import HvExitKind, HvVendor
from hvtrace.exitcodes import ExitCode
from hvtrace.trace.capture import Capture
from hvtrace.trace.code import (
    UNKNOWN,
    CodeCache,
    CodeCollector,
    CodeMap,
    MemoryCode,
)
from hvtrace.trace.errors import TraceError
from hvtrace.trace.records import RECORD_DTYPE, Records, empty
from hvtrace.trace.sources import GdbMemorySource, SharedRamSource
from hvtrace.trace.tracefile import INDEX_DTYPE, TRAILER, TraceFile, TraceWriter
from hvtrace.tui.fmt import HEADER, INSN_WIDTH, format_record

CPUID = bytes.fromhex("0fa2")
RDMSR = bytes.fromhex("0f32")
WRMSR = bytes.fromhex("0f30")
VMCALL = bytes.fromhex("0f01c1")
VMMCALL = bytes.fromhex("0f01d9")
SDM = {CPUID: "cpuid", RDMSR: "rdmsr", WRMSR: "wrmsr", VMCALL: "vmcall", VMMCALL: "vmmcall"}
CPUID_SVM = 0x72


class CountingReader:
    """A code reader over a dict, counting its reads; ``live`` like guest memory."""

    def __init__(self, code: dict[int, bytes], *, live: bool = True) -> None:
        self.code = code
        self.live = live
        self.paged = False
        self.reads: list[int] = []

    def read(self, rip: int, cr3: int = 0) -> bytes | None:
        self.reads.append(rip)
        return self.code.get(rip)


def records(rips: list[int], insn_len: int = 0, kind: int = HvExitKind.CPUID) -> Records:
    recs = np.zeros(len(rips), RECORD_DTYPE)
    recs["seq"] = np.arange(1, len(rips) + 1)
    recs["tsc"] = 1000 + np.arange(len(rips)) * 10
    recs["kind"] = kind
    recs["reason"] = CPUID_SVM
    recs["rip"] = rips
    recs["insn_len"] = insn_len
    return recs


# ------------------------------------------------------------------------------------------ decoding
@pytest.mark.parametrize(("code", "text"), SDM.items(), ids=SDM.values())
def test_one_instruction_from_the_opcode_tables(code: bytes, text: str) -> None:
    insn = disasm.instruction(code + b"\x90" * (disasm.MAX_INSN - len(code)), 0x100000)  # 15 bytes read
    assert insn is not None
    assert insn.text == text
    assert insn.size == len(code)
    assert insn.raw == code
    assert CodeCache(CodeMap({0x1000: code})).text(0x1000, len(code)) == text


def test_operands_in_intel_syntax_and_undecodable_bytes() -> None:
    assert CodeCache(CodeMap({0x10: bytes.fromhex("0f22c0")})).text(0x10) == "mov cr0, rax"
    assert CodeCache(CodeMap({0x10: bytes.fromhex("e6e9")})).text(0x10) == "out 0xe9, al"
    assert disasm.instruction(b"\x0f\x01") is None  # cut short: does not decode
    assert CodeCache(CodeMap({0x10: b"\x0f\x01"})).text(0x10) == "(bad)"
    assert disasm.instruction(b"") is None


def test_gdb_face_uses_the_shared_formatting() -> None:
    code = CPUID + bytes.fromhex("0f01d9")
    assert gdb_disasm.disassemble(code, 0x1000, 2) == disasm.disassemble(code, 0x1000, 2)
    cs = disasm.capstone()
    assert cs is not None
    assert disasm.format_lines(cs, code, 0x1000, 2)[1] == "0x1002: 0f 01 d9             vmmcall"
    assert gdb_disasm.MAX_INSN == disasm.MAX_INSN == 15


# ------------------------------------------------------------------------------------------ the cache
def test_each_rip_is_read_and_decoded_once() -> None:
    reader = CountingReader({0x1000: CPUID, 0x2000: RDMSR})
    cache = CodeCache(reader)
    for _ in range(1000):
        assert cache.text(0x1000, 2) == "cpuid"
        assert cache.text(0x2000, 2) == "rdmsr"
    assert reader.reads == [0x1000, 0x2000]
    assert len(cache) == 2


def test_unknown_bytes_show_a_question_mark_and_no_reader_shows_nothing() -> None:
    reader = CountingReader({})
    cache = CodeCache(reader)
    assert cache.text(0x1000) == UNKNOWN == "?"
    assert cache.text(0x1000) == "?"
    assert reader.reads == [0x1000]  # unknown is cached too
    assert CodeCache(None).text(0x1000) == ""
    assert CodeCache(CodeMap({})).text(0x1000, 2) == "?"


def test_a_reader_that_fails_is_unknown_not_a_crash() -> None:
    class Broken:
        live = True
        paged = False

        def read(self, rip: int, cr3: int = 0) -> bytes | None:
            raise ValueError("mmap closed or invalid")

    assert CodeCache(Broken()).text(0x1000) == "?"


def test_length_mismatch_rereads_live_memory_once() -> None:
    # the record says 2 bytes (CPUID) but memory held VMCALL when first read: read again
    reader = CountingReader({0x1000: VMCALL})
    cache = CodeCache(reader)
    assert cache.text(0x1000) == "vmcall"  # no length known: nothing to check
    reader.code[0x1000] = CPUID  # the memory changed back
    assert cache.text(0x1000, 2) == "cpuid"
    assert reader.reads == [0x1000, 0x1000]
    # still different after the re-read: shown, with the mismatch, and not re-read every frame
    reader.code[0x2000] = VMCALL
    for _ in range(3):
        assert cache.text(0x2000, 2) == "vmcall [len 3!=2]"
    assert reader.reads.count(0x2000) == 2
    # a stored code map cannot change: no re-read
    stored = CountingReader({0x3000: VMMCALL}, live=False)
    assert CodeCache(stored).text(0x3000, 2) == "vmmcall [len 3!=2]"
    assert stored.reads == [0x3000]


def test_cache_is_bounded() -> None:
    reader = CountingReader(dict.fromkeys(range(10), CPUID))
    cache = CodeCache(reader, limit=4)
    for r in range(10):
        assert cache.text(r) == "cpuid"
    assert len(cache) <= 4


# ------------------------------------------------------------------------------------------ readers
def ram_file(tmp_path: Path, size: int = 0x3000) -> Path:
    ram = bytearray(size)
    ram[0x1000:0x1002] = CPUID
    ram[0x1010:0x1013] = VMMCALL
    ram[size - 2 :] = WRMSR  # the last two bytes of RAM
    p = tmp_path / "guest.ram"
    p.write_bytes(bytes(ram))
    return p


def test_memory_reader_reads_15_bytes_fewer_at_the_end_of_ram(tmp_path: Path) -> None:
    p = ram_file(tmp_path)
    with SharedRamSource(p, writable=False) as src:
        code = MemoryCode(src)
        got = code.read(0x1000)
        assert got is not None
        assert len(got) == 15
        assert got.startswith(CPUID)
        assert code.read(0x3000 - 2) == WRMSR
        assert code.read(0x3000) is None  # past the end
        assert code.read(1 << 40) is None
        cache = CodeCache(code)
        assert cache.text(0x1000, 2) == "cpuid"
        assert cache.text(0x1010, 3) == "vmmcall"
        assert cache.text(0x3000 - 2, 2) == "wrmsr"
        assert cache.text(0x5000) == "?"
    # the mapping is gone (session closed): unknown, no crash
    assert MemoryCode(src).read(0x1000) is None
    assert CodeCache(MemoryCode(src)).text(0x1010) == "?"


def test_memory_reader_without_segments_stops_at_the_page_end() -> None:
    mem = bytearray(0x2000)
    mem[0x1FFE:0x2000] = CPUID

    def read(addr: int, n: int) -> bytes:
        if addr + n > 0x2000:
            raise TraceError(ExitCode.BAD_DATA, "unreadable page")
        return bytes(mem[addr : addr + n])

    code = MemoryCode(GdbMemorySource(read))
    assert code.read(0x1FFE) == CPUID
    assert code.read(0x100) == bytes(15)


# ------------------------------------------------------------------------------------------ capture side
def test_collector_reads_each_distinct_rip_once_and_keeps_the_instruction_bytes() -> None:
    reader = CountingReader({0x1000: CPUID + b"\x90" * 13, 0x2000: RDMSR + b"\xcc" * 13, 0x4000: b"\x0f\x01"})
    col = CodeCollector(reader)
    col.add(records([0x1000] * 5000 + [0x2000] * 10))
    col.add(records([0x2000, 0x1000, 0x3000, 0x4000] * 100))
    col.add(empty())
    assert sorted(reader.reads) == [0x1000, 0x2000, 0x3000, 0x4000]  # unreadable 0x3000: not retried
    assert col.code == {0x1000: CPUID, 0x2000: RDMSR, 0x4000: b"\x0f\x01"}  # undecodable: as read
    assert CodeCollector(None).code == {}
    small = CodeCollector(CountingReader(dict.fromkeys(range(100), CPUID)), limit=3)
    small.add(records(list(range(100))))
    assert len(small.code) == 3


class FakeRings:
    def __init__(self, source: SharedRamSource) -> None:
        self.source = source


class FakeStream:
    """A RecordStream over fixed batches, with rings in a RAM file (as Capture sees QEMU)."""

    name = "fake"

    def __init__(self, batches: list[Records], source: SharedRamSource) -> None:
        self.batches = batches
        self.rings = FakeRings(source)

    def poll(self) -> Records:
        return self.batches.pop(0) if self.batches else empty()

    def alive(self) -> bool:
        return bool(self.batches)

    def lost_by_cpu(self) -> dict[int, int]:
        return {}

    def lost_where(self) -> dict[str, int]:
        return {}

    def detach(self) -> None:
        pass


def test_capture_stores_the_code_map_and_a_replay_disassembles(tmp_path: Path) -> None:
    p = ram_file(tmp_path)
    out = tmp_path / "cap.hvt"
    with SharedRamSource(p, writable=False) as src:
        batches = [records([0x1000] * 300 + [0x1010] * 20, 2), records([0x1000] * 300, 2)]
        cap = Capture(FakeStream(batches, src), vendor=HvVendor.SVM, meta={"vendor": int(HvVendor.SVM)})
        assert cap.memory is src
        summary = cap.record(out)
    assert summary["records"] == 620
    tf = TraceFile.open(out)
    assert tf.code == {0x1000: CPUID, 0x1010: VMMCALL}
    assert tf.summary is not None
    assert tf.summary["code"] == {"0x1000": "0fa2", "0x1010": "0f01d9"}
    cache = CodeCache(CodeMap(tf.code))
    assert [cache.text(int(r["rip"]), int(r["insn_len"])) for r in tf.records()[:1]] == ["cpuid"]
    assert cache.text(0x1010, 2) == "vmmcall [len 3!=2]"


# ------------------------------------------------------------------------------------------ trace files
def test_trace_file_round_trip_with_the_code_map(tmp_path: Path) -> None:
    p = tmp_path / "t.hvt"
    code = {0x1000: CPUID, 0x2000: RDMSR, 0xFFFF_8000_0000_0000: VMCALL}
    with TraceWriter(p, {"vendor": 2, "cpus": 1}) as w:
        w.add(records([0x1000, 0x2000]))
        w.code.update(code)
    tf = TraceFile.open(p)
    assert tf.code == code
    assert tf.record_count == 2
    assert tf.summary is not None
    assert tf.summary["code"]["0xffff800000000000"] == "0f01c1"


def test_files_without_a_code_map_still_load(tmp_path: Path) -> None:
    p = tmp_path / "old.hvt"
    with TraceWriter(p, {"vendor": 2, "cpus": 1}) as w:  # no code: the summary has no "code" key
        w.add(records([0x1000] * 10))
    tf = TraceFile.open(p)
    assert tf.summary is not None
    assert "code" not in tf.summary
    assert tf.code == {}
    assert tf.record_count == 10
    assert CodeCache(CodeMap(tf.code)).text(0x1000, 2) == "?"
    # a killed capture (no index, no summary): recovered, no code map
    data = p.read_bytes()
    cut = tmp_path / "killed.hvt"
    cut.write_bytes(data[: data.rfind(b"HVIX")])
    killed = TraceFile.open(cut)
    assert killed.recovered
    assert killed.code == {}


def test_a_malformed_code_map_is_skipped_entry_by_entry(tmp_path: Path) -> None:
    p = tmp_path / "t.hvt"
    with TraceWriter(p, {"vendor": 2, "cpus": 1}) as w:
        w.add(records([0x1000]))
    # rewrite the summary by hand, as another (future or broken) writer might have
    data = bytearray(p.read_bytes())
    off, length, _crc, magic = TRAILER.unpack_from(data, len(data) - TRAILER.size)
    body = bytes(data[off : off + length])
    n, blen = struct.unpack_from("<II", body, 4)
    head = body[: 12 + n * INDEX_DTYPE.itemsize]
    summary = json.loads(body[12 + n * INDEX_DTYPE.itemsize :][:blen])
    summary["code"] = {"0x1000": "0fa2", "nonsense": "0f", "0x2000": "zz"}
    blob = json.dumps(summary).encode()
    body = head[:8] + struct.pack("<I", len(blob)) + head[12:] + blob
    p.write_bytes(bytes(data[:off]) + body + TRAILER.pack(off, len(body), zlib.crc32(body), magic))
    tf = TraceFile.open(p)
    assert not tf.recovered
    assert tf.code == {0x1000: CPUID}


# ------------------------------------------------------------------------------------------ the log line
def test_log_line_has_the_instruction_column() -> None:
    col = HEADER.index("instruction")
    rec = records([0x1000], 2)[0]
    cache = CodeCache(CodeMap({0x1000: CPUID}))
    line = format_record(rec, HvVendor.SVM, 1000, None, cache)
    assert line[col : col + INSN_WIDTH].strip() == "cpuid"
    assert "0x1000" in line[:col]
    assert "leaf 0x0" in line[col + INSN_WIDTH :]
    assert format_record(rec, HvVendor.SVM, 1000, None)[col : col + INSN_WIDTH].strip() == ""
    unknown = format_record(rec, HvVendor.SVM, 1000, None, CodeCache(CodeMap({})))
    assert unknown[col : col + INSN_WIDTH].strip() == "?"
    long = bytes.fromhex("48c78488000100000000000000")  # mov qword ptr [rax + rcx*4 + 0x100], 0
    line = format_record(
        records([0x2000], 0)[0], HvVendor.SVM, 1000, None, CodeCache(CodeMap({0x2000: long}))
    )
    cell = line[col : col + INSN_WIDTH]
    assert cell.startswith("mov qword ptr")
    assert cell.endswith("…")
    assert line[col + INSN_WIDTH : col + INSN_WIDTH + 2] == "  "
