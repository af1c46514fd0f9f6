"""The hypervisor's gdb stub, byte by byte (issue 17): framing, acknowledgements, escapes, run
lengths, malformed input answered or refused (never a hang: every run must end at end of input),
and the commands gdb needs (hv/core/gdbstub, driven through tests/native/test_gdbstub.c)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.unit.gdbstub_native import VBASE, build, pkt, replies, talk

REG_BYTES = 16 * 8 + 8 + 7 * 4 + 8 * 10 + 8 * 4 + 16 * 16 + 4 + 2 * 8  # target_xml.c's 59 registers


@pytest.fixture(scope="module")
def exe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("gdbstub"))


def vmem(addr: int, n: int) -> bytes:
    """The fake target's initial memory at a virtual address."""
    return bytes(((addr - VBASE + i) * 7 + 1) & 0xFF for i in range(n))


def test_ack_mode_acks_each_packet_and_waits_for_gdbs_ack(exe: Path) -> None:
    assert talk(exe, pkt("?") + b"+" + pkt("qC") + b"+") == [b"+", b"T05thread:1;", b"+", b"QC1"]


def test_bad_checksum_is_refused_and_the_resend_answered(exe: Path) -> None:
    good = pkt("?")
    bad = good[:-2] + (b"00" if good[-2:] != b"00" else b"11")
    assert talk(exe, bad + good + b"+") == [b"-", b"+", b"T05thread:1;"]


def test_a_nacked_reply_is_sent_again(exe: Path) -> None:
    assert talk(exe, pkt("qC") + b"-+") == [b"+", b"QC1", b"QC1"]


@pytest.mark.parametrize(
    "frame",
    [
        b"$*!#" + b"%02x" % (ord("*") + ord("!")),  # a run length with nothing to repeat
        b"$m}#" + b"%02x" % ((ord("m") + ord("}")) % 256),  # a dangling escape
        b"$m10*\x1f,4#" + b"%02x" % ((sum(b"m10*\x1f,4")) % 256),  # a count below the minimum
        b"$?#zz",  # a checksum that is not hex
    ],
    ids=["rle-first", "dangling-escape", "rle-count", "checksum-not-hex"],
)
def test_malformed_frames_are_refused_then_the_next_served(exe: Path, frame: bytes) -> None:
    assert talk(exe, frame + pkt("?") + b"+") == [b"-", b"+", b"T05thread:1;"]


def test_noise_and_a_cut_frame_are_skipped(exe: Path) -> None:
    # Bytes outside frames are ignored; a '$' inside a frame starts a new one.
    assert talk(exe, b"++-junk$m10" + pkt("qC") + b"+") == [b"+", b"QC1"]


@pytest.mark.parametrize("tail", [b"", b"$qC", b"$qC#", b"$qC#1", b"$m}", b"$m*"], ids=repr)
def test_input_ending_anywhere_ends_the_stub(exe: Path, tail: bytes) -> None:
    talk(exe, pkt("?") + b"+" + tail)


def test_run_length_encoding_is_expanded(exe: Path) -> None:
    # "10*!" is '1', '0' and 33 - 29 = 4 more '0': m100000,4.
    assert replies(exe, "m10*!,4") == [vmem(VBASE, 4).hex().encode()]


def test_escaped_binary_write_lands_as_sent(exe: Path) -> None:
    data = b"}#$*\x00\x7f"
    escaped = re.sub(rb"[}#$*]", lambda m: b"}" + bytes([m.group(0)[0] ^ 0x20]), data)
    got = replies(exe, b"X100010,0:", b"X100010,%x:" % len(data) + escaped, "m100010,6")
    assert got == [b"OK", b"OK", data.hex().encode()]


def test_no_ack_mode_sends_and_expects_no_acks(exe: Path) -> None:
    got = talk(exe, pkt("QStartNoAckMode") + b"+" + pkt("qC") + pkt("?"))
    assert got == [b"+", b"OK", b"QC1", b"T05thread:1;"]


@pytest.mark.parametrize(
    ("packet", "reply"),
    [
        ("m100000", b"E01"),
        ("mzz,4", b"E01"),
        ("m100000,4x", b"E01"),
        ("M100000,2:00", b"E01"),
        ("M100000,1:zz", b"E01"),
        ("X100000,2:a", b"E01"),
        ("Z0,zz", b"E01"),
        ("Hg99", b"E01"),
        ("Hx1", b"E01"),
        ("T3", b"E01"),
        ("P99=00", b"E01"),
        ("p10=", b"E01"),
        ("vCont;q", b"E01"),
        ("qRcmd,7", b"E01"),
        ("qRcmd,6e6f7065", b"E02"),
        ("m0,4", b"E14"),
        ("M0,1:00", b"E14"),
        ("qFoo", b""),
        ("vMustReplyEmpty", b""),
        ("Z3,100000,4", b""),  # a read-only watch: x86 debug registers have no such form (hw_slots.c)
        ("Z5,100000,1", b""),
        ("Z2,zz", b"E01"),
        ("", b""),
    ],
)
def test_malformed_or_unknown_packets_are_answered(exe: Path, packet: str, reply: bytes) -> None:
    assert replies(exe, packet, "qC") == [reply, b"QC1"]


def test_an_overlong_packet_is_answered_e01(exe: Path) -> None:
    assert replies(exe, "M100000,1:" + "0" * 5000, "qC") == [b"E01", b"QC1"]


def test_qsupported_advertises_packet_size_and_features(exe: Path) -> None:
    (got,) = replies(exe, "qSupported:multiprocess+;swbreak+;xmlRegisters=i386")
    feats = got.split(b";")
    assert b"PacketSize=1000" in feats
    assert {b"qXfer:features:read+", b"QStartNoAckMode+", b"swbreak+", b"hwbreak+"} <= set(feats)


def dr7(exe: Path, *packets: str) -> list[bytes]:
    """The replies to ``packets``, then the DR7 the fake target would load (monitor "dr7")."""
    *got, out, ok = replies(exe, *packets, "qRcmd," + b"dr7".hex())
    assert ok == b"OK"
    return [*got, bytes.fromhex(out[1:].decode()).split()[1]]


def test_hardware_slots_encode_dr7_as_the_sdm_lays_it_out(exe: Path) -> None:
    # SDM Vol. 3B Figure 18-1: Gn = bit 2n+1; R/Wn at 16+4n (00 exec, 01 write, 11 read/write); LENn
    # at 18+4n (00 1 byte, 01 2, 11 4, 10 8); bit 10 reads as 1. gdb's errors: E16 = EINVAL, E1c = ENOSPC.
    assert dr7(exe, "Z1,100010,1") == [b"OK", b"402"]  # G0, exec, LEN 00
    inserts = ("Z1,100010,1", "Z2,2000,8", "Z4,3000,4", "Z2,4001,2", "Z2,4000,3", "Z2,5000,1", "Z2,6000,1")
    got = dr7(exe, *inserts)
    assert got[:7] == [b"OK", b"OK", b"OK", b"E16", b"E16", b"OK", b"E1c"]  # misaligned, 3 bytes, 5th slot
    # slot 1: G1 0x8, R/W1 01 << 20, LEN1 10 << 22; slot 2: G2 0x20, 11 << 24, 11 << 26;
    # slot 3: G3 0x80, 01 << 28
    assert int(got[7], 16) == 0x402 | 0x8 | 1 << 20 | 2 << 22 | 0x20 | 3 << 24 | 3 << 26 | 0x80 | 1 << 28
    got = dr7(exe, "Z2,2000,8", "Z2,2000,8", "z2,2000,8", "z2,2000,8")
    assert got == [b"OK", b"OK", b"OK", b"E02", b"400"]  # inserted once; the second removal finds nothing


def test_hardware_stops_report_hwbreak_and_watch(exe: Path) -> None:
    # The fake target's continue stops CPU 1 on the first hardware slot (on its address for Z1).
    packets = ("Z2,2000,8", "c", "z2,2000,8", "Z4,3000,4", "c", "z4,3000,4", "Z1,100010,1", "c", "p10")
    got = replies(exe, *packets)
    assert got[:3] == [b"OK", b"T05thread:2;watch:2000;", b"OK"]
    assert got[3:6] == [b"OK", b"T05thread:2;awatch:3000;", b"OK"]
    assert got[6:8] == [b"OK", b"T05thread:2;hwbreak:;"]
    assert got[8] == (VBASE + 0x10).to_bytes(8, "little").hex().encode()


def test_detach_clears_the_hardware_slots(exe: Path) -> None:
    # after D the stub acknowledges again ('+'): the next gdb starts in ack mode
    assert dr7(exe, "Z2,2000,8", "Z1,100010,1", "D") == [b"OK", b"OK", b"OK", b"+", b"400"]


def test_target_description_reads_in_chunks(exe: Path) -> None:
    xml = b""
    while True:
        (chunk,) = replies(exe, f"qXfer:features:read:target.xml:{len(xml):x},100")
        assert chunk[:1] in (b"m", b"l")
        assert len(chunk) <= 0x101
        xml += chunk[1:]
        if chunk[:1] == b"l":
            break
    assert b"<architecture>i386:x86-64</architecture>" in xml
    assert xml.count(b"<reg ") == 59
    assert replies(exe, "qXfer:features:read:other.xml:0,10", "qXfer:features:read:target.xml:ffff,10") == [
        b"E00",
        b"l",
    ]


def test_registers_read_write(exe: Path) -> None:
    g, p16, _, p16_new, g2 = replies(exe, "g", "p10", "P0=efbeadde00000000", "p0", "g")
    assert len(g) == 2 * REG_BYTES
    assert g[:16] == (0x1111111111111111).to_bytes(8, "little").hex().encode()  # CPU 0's RAX
    assert p16 == VBASE.to_bytes(8, "little").hex().encode()  # RIP is register 16
    assert p16_new == b"efbeadde00000000"
    assert g2[:16] == b"efbeadde00000000"
    assert g2[16:] == g[16:]
    assert replies(exe, "G" + g.decode()[:-2]) == [b"E01"]  # one byte short


def test_threads_are_cpus(exe: Path) -> None:
    queries = ["qfThreadInfo", "qsThreadInfo", "T4", "T3", "Hg4", "p10", "qC", "Hg0", "qC", "qAttached"]
    got = replies(exe, *queries)
    rip3 = (VBASE + 0x300).to_bytes(8, "little").hex().encode()
    assert got == [b"m1,2,4", b"l", b"OK", b"E01", b"OK", rip3, b"QC4", b"OK", b"QC1", b"1"]


def test_breakpoints_patch_and_restore_memory(exe: Path) -> None:
    got = replies(exe, "Z0,100020,1", "m100020,1", "z0,100020,1", "m100020,1", "Z0,100040,1", "D")
    assert got == [b"OK", b"cc", b"OK", vmem(VBASE + 0x20, 1).hex().encode(), b"OK", b"OK"]


def test_continue_step_and_interrupt(exe: Path) -> None:
    # The fake target: continue stops CPU 1 on the lowest breakpoint, or with SIGINT with none.
    got = replies(exe, "Z0,100080,1", "vCont;c", "p10", "z0,100080,1", "vCont;s:4;c", "p10", "c")
    assert got[:2] == [b"OK", b"T05thread:2;swbreak:;"]
    assert got[2] == (VBASE + 0x80).to_bytes(8, "little").hex().encode()
    assert got[3:5] == [b"OK", b"T05thread:4;"]
    assert got[5] == (VBASE + 0x301).to_bytes(8, "little").hex().encode()  # Hg follows the stop
    assert got[6] == b"T02thread:2;"


def test_a_vcont_naming_only_the_stepped_thread_leaves_the_others_stopped(exe: Path) -> None:
    # gdb steps over a breakpoint with vCont;s:TID alone (the remote protocol: a thread no action
    # applies to stays stopped); with a default action (;c) the others run. The fake target advances
    # a resumed CPU's RIP by one, so thread 2's RIP shows whether it ran.
    got = replies(
        exe,
        "Hg2",
        "p10",
        "vCont;s:4",
        "Hg2",
        "p10",
        "vCont;s:4;c",
        "Hg2",
        "p10",
        "vCont;s:4;c:-1",
        "Hg2",
        "p10",
    )
    rips = [int.from_bytes(bytes.fromhex(got[i].decode()), "little") for i in (1, 4, 7, 10)]
    assert got[2] == got[5] == got[8] == b"T05thread:4;", got
    assert rips[1] == rips[0], "vCont;s:4 alone resumed thread 2"
    assert rips[2] == rips[1] + 1, "vCont;s:4;c left thread 2 stopped"
    assert rips[3] == rips[2] + 1, "vCont;s:4;c:-1 left thread 2 stopped"


def test_monitor_and_physical_mode(exe: Path) -> None:
    got = replies(exe, "qRcmd," + b"echo hi".hex(), "Qqemu.PhyMemMode:1", "qqemu.PhyMemMode", "m1000,2")
    assert got[0] == b"O" + b"cpu 0: hi\n".hex().encode()
    assert got[1:] == [b"OK", b"OK", b"1", b"a5a4"]
    assert replies(exe, "Qqemu.PhyMemMode:1", "Qqemu.PhyMemMode:0", "m1000,2") == [b"OK", b"OK", b"E14"]


def test_ctrl_c_while_stopped_is_ignored(exe: Path) -> None:
    assert talk(exe, pkt("QStartNoAckMode") + b"+\x03" + pkt("qC")) == [b"+", b"OK", b"QC1"]


def test_kill_ends_the_stub(exe: Path) -> None:
    # Nothing after k is read: the driver exits (0) with the input unread.
    assert replies(exe, "k", "qC") == []
