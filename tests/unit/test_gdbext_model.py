"""The gdb face's pure layer (gdbext.model), the ELF core writer and the `hvtrace gdb` command line."""

from __future__ import annotations

import ctypes
import struct
from pathlib import Path

import pytest

from gdbext import break_args, model
from hvtrace import abi
from hvtrace.elfcore import dump_segments, write_core
from hvtrace.exitcodes import LaunchError
from hvtrace.gdb_launch import gdb_argv, port_of_ram
from hvtrace.trace.sources import DumpSource


def test_build_break_sets_kind_arg0_and_gpa() -> None:
    b = break_args.build_break(abi.HvVendor.SVM, 2, ["cpuid", "--leaf", "1", "--cpu", "1"])
    assert (b.enabled, b.kind, b.reason, b.cpu) == (1, abi.HvExitKind.CPUID, abi.HV_BRK_ANY, 1)
    assert (b.flags, b.arg0) == (abi.HV_BRK_MATCH_ARG0, 1)
    g = break_args.build_break(abi.HvVendor.VMX, 1, ["EPT_VIOLATION", "--gpa", "0x1000-0x1fff"])
    assert (g.kind, g.reason, g.flags, g.gpa_lo, g.gpa_hi) == (abi.HV_BRK_ANY, 48, 2, 0x1000, 0x1FFF)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bogus"], "unknown exit reason 'bogus'"),
        (["cpuid", "--msr", "1", "--leaf", "2"], "--leaf and --msr both set"),
        (["cpuid", "--cpu", "4"], "no CPU 4"),
        (["cpuid", "--gpa", "0x20-0x10"], "bad guest-physical range '0x20-0x10' (end below start)"),
        (["cpuid", "--leaf"], "option --leaf needs a value"),
        (["cpuid", "--frob"], "unknown option '--frob'"),
        ([], "which exit?"),
    ],
)
def test_build_break_errors(args: list[str], message: str) -> None:
    with pytest.raises(model.HvError, match=None) as e:
        break_args.build_break(abi.HvVendor.SVM, 2, args)
    assert str(e.value).startswith(message)


def test_break_table_full() -> None:
    cfg = abi.HvBreakConfig()
    for i in range(abi.HV_BREAK_MAX - 1):
        cfg.entry[i].enabled = 1
    assert model.free_slot(cfg) == abi.HV_BREAK_MAX - 1
    cfg.entry[abi.HV_BREAK_MAX - 1].enabled = 1
    with pytest.raises(model.HvError, match=r"break table full \(8 entries\)"):
        model.free_slot(cfg)


def test_publish_writes_follow_the_abi_protocol() -> None:
    """abi.h: armed = 0 first, then the entries and kinds, the generation bumped, armed last."""
    cfg = abi.HvBreakConfig()
    cfg.armed, cfg.generation = 1, 41
    cfg.entry[0] = break_args.build_break(abi.HvVendor.SVM, 2, ["msr_read"])
    cfg.entry[3] = break_args.build_break(abi.HvVendor.SVM, 2, ["cpuid", "if", "rax", "==", "1"])
    writes = model.publish_writes(cfg, [3])
    C, E = abi.HvBreakConfig, abi.HvBreak
    assert [at for at, _ in writes] == [
        C.armed.offset,
        model.break_entry_offset(3),
        C.kinds.offset,
        C.generation.offset,
        C.armed.offset,
    ]
    assert writes[0][1] == bytes(4)
    assert E.from_buffer_copy(writes[1][1]).term[0].value == 1
    kinds = (1 << abi.HvExitKind.MSR_READ) | (1 << abi.HvExitKind.CPUID)
    assert int.from_bytes(writes[2][1], "little") == kinds == cfg.kinds
    assert int.from_bytes(writes[3][1], "little") == 42 == cfg.generation
    assert int.from_bytes(writes[4][1], "little") == 2 == cfg.armed
    # Deleting everything still bumps the generation and leaves the table disarmed.
    cfg.entry[0] = cfg.entry[3] = abi.HvBreak()
    writes = model.publish_writes(cfg, [0, 3])
    assert [at for at, _ in writes][1:3] == [model.break_entry_offset(0), model.break_entry_offset(3)]
    assert (cfg.generation, cfg.armed) == (43, 0)
    assert writes[-1] == (C.armed.offset, bytes(4))


@pytest.mark.parametrize(
    ("current", "following"), [(0, 1), (1, 2), (0xFFFFFFFD, 0xFFFFFFFE), (0xFFFFFFFE, 1)]
)
def test_next_generation_skips_what_the_hypervisor_reserves(current: int, following: int) -> None:
    assert model.next_generation(current) == following


def _snapshot_reader(seq: int, fields: list[tuple[int, int]]) -> tuple[abi.HvDiscovery, model.Reader]:
    snap = abi.HvSnapshot()
    snap.seq, snap.vendor, snap.count, snap.why, snap.exit_reason = seq, abi.HvVendor.VMX, len(fields), 1, 18
    for i, (e, v) in enumerate(fields):
        snap.field[i].encoding, snap.field[i].value = e, v
    mem = {0x5000: bytes(snap)}
    d = abi.HvDiscovery()
    d.cpu_count = 2
    d.snapshot[0] = 0x5000

    def read(addr: int, n: int) -> bytes:
        base = 0x5000
        return mem[base][addr - base : addr - base + n]

    return d, read


def test_snapshot_errors_and_decode() -> None:
    d, read = _snapshot_reader(2, [(0x681E, 0x1234), (0x4402, 18)])
    s = model.read_snapshot(read, d, 0)
    assert s.value("GUEST_RIP") == 0x1234
    assert "why=REQUEST" in model.snapshot_title(s)
    assert "exit=VMCALL (0x12)" in model.snapshot_title(s)
    with pytest.raises(model.HvError, match=r"^CPU 1 has no snapshot area"):
        model.read_snapshot(read, d, 1)
    with pytest.raises(model.HvError, match=r"^no CPU 2 \(this target has 2 CPUs: 0-1\)"):
        model.read_snapshot(read, d, 2)
    d0, read0 = _snapshot_reader(0, [])
    with pytest.raises(model.HvError, match=r"^no snapshot on CPU 0 yet"):
        model.read_snapshot(read0, d0, 0)
    d1, read1 = _snapshot_reader(3, [])
    with pytest.raises(model.HvError, match=r"^the snapshot of CPU 0 is incomplete \(seq 3 is odd"):
        model.read_snapshot(read1, d1, 0)


def test_discovery_errors() -> None:
    with pytest.raises(model.HvError, match="no discovery magic"):
        model.parse_discovery(bytes(ctypes.sizeof(abi.HvDiscovery)), 0x1000)


def test_record_line_decodes_per_vendor() -> None:
    r = abi.HvRecord(seq=7, cpu=1, kind=abi.HvExitKind.CPUID, reason=0x72, rip=0x1000, arg0=1)
    assert (
        model.record_line(abi.HvVendor.SVM, r) == "CPU1 #7 CPUID(0x72)/CPUID rip=0x1000 leaf 0x1 subleaf 0x0"
    )
    io = abi.HvRecord(
        seq=1, kind=abi.HvExitKind.IO, reason=30, qual=(0x3F8 << 16) | 0x0, rip=0x2000, arg0=0x3F8
    )
    line = model.record_line(abi.HvVendor.VMX, io)
    assert "IO_INSTRUCTION" in line
    assert "port 0x3f8" in line
    assert "[" in line  # the qualification decoded


def test_latest_records_checks_seq_and_wraps() -> None:
    cap = 16
    ring = model.RingState(cpu=0, addr=0, head=20, tail=0, dropped=0, capacity=cap, enabled=1)
    mem = bytearray(model.RING_HEADER_SIZE + cap * abi.HV_RECORD_SIZE)
    for s in range(4, 20):
        struct.pack_into("<Q", mem, model.RING_HEADER_SIZE + (s % cap) * abi.HV_RECORD_SIZE, s + 1)
    recs = model.latest_records(lambda a, n: bytes(mem[a : a + n]), ring, 5)
    assert [r.seq for r in recs] == [16, 17, 18, 19, 20]


def test_elf_core_roundtrip(tmp_path: Path) -> None:
    (tmp_path / "ram.bin.0").write_bytes(b"\x11" * 0x3000)
    (tmp_path / "ram.bin.100000").write_bytes(bytes(range(256)) * 64)
    segs = dump_segments(tmp_path / "ram.bin")
    assert [a for a, _ in segs] == [0, 0x100000]
    core = write_core(segs, tmp_path / "x.core")
    head = core.read_bytes()[:64]
    assert head[:4] == b"\x7fELF"
    assert struct.unpack_from("<H", head, 16)[0] == 4  # ET_CORE
    with DumpSource.open(core) as src:
        assert src.read(0x100010, 4) == bytes([16, 17, 18, 19])
        assert src.read(0x2FFF, 1) == b"\x11"


def test_gdb_argv_and_ram_lookup(tmp_path: Path) -> None:
    argv = gdb_argv(elf=Path("/x/hvtrace.elf"), port=1234, options=["-nx", "-batch", "-ex", "hv-cpus"])
    assert argv[:2] == ["gdb", "-q"]
    assert argv.index("-nx") > argv.index("hv-symbols")  # the user's options, in their order, last
    assert "target remote 127.0.0.1:1234" in argv
    # symbols where the image runs (it moved to the top of RAM), after connecting, before the commands
    assert argv.index("hv-symbols") > argv.index("target remote 127.0.0.1:1234")
    assert argv[-2:] == ["-ex", "hv-cpus"]
    assert "hv-symbols" not in gdb_argv(elf=Path("/x/hvtrace.elf"))  # no target: nothing to find
    assert any(a.endswith("gdbext/hvtrace_gdb.py") for a in argv)
    proc = tmp_path / "proc"
    (proc / "42").mkdir(parents=True)
    ram = "/dev/shm/hvtrace-1-ab.ram"
    argv_q = [
        "qemu",
        "-object",
        f"memory-backend-file,id=ram,size=64M,mem-path={ram},share=on",
        "-gdb",
        "tcp:127.0.0.1:5555",
    ]
    (proc / "42" / "cmdline").write_bytes("\0".join(argv_q).encode() + b"\0")
    assert port_of_ram(Path(ram), proc) == 5555
    with pytest.raises(LaunchError, match="no running QEMU maps RAM file"):
        port_of_ram(Path("/dev/shm/other.ram"), proc)


def test_hvtrace_gdb_needs_exactly_one_target() -> None:
    from hvtrace.cli import main  # noqa: PLC0415

    assert main(["gdb"]) == 64
    assert main(["gdb", "--port", "1", "--core", "/nonexistent"]) == 64


def test_hvtrace_gdb_with_a_missing_core_is_missing_input() -> None:
    from hvtrace.cli import main  # noqa: PLC0415

    assert main(["gdb", "--core", "/nonexistent/x.core"]) == 66  # EX_NOINPUT, as every missing file
