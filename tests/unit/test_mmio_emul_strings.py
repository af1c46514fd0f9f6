"""The MMIO emulator, continued (see test_mmio_emul.py for the harness and the SDM sources): string
instructions, faults and refusals, and the xAPIC register-file policy."""

from __future__ import annotations

import pytest

from tests.unit.mmio_native import (
    DF,
    R1,
    MmioDriver,
    done,
    emul,
)


# -------------------------------------------------------------------------------------- string ops
def test_rep_stosd_fills_and_updates_edi_ecx(mmio: MmioDriver) -> None:
    # F3 AB = REP STOS m32 (Vol. 2B STOS, REP): ES:EDI, ECX iterations, EDI += 4 with DF = 0
    got = emul(mmio, 32, "f3 ab", rdi=0xFEE00100, rcx=4, rax=0x5A5A5A5A)
    done(got, 2)
    assert got["devlog"] == ",".join(f"w:{0x100 + 4 * i:x}:4:5a5a5a5a" for i in range(4))
    assert (got["rdi"], got["rcx"], got["iters"]) == ("fee00110", "0", "4")


def test_rep_stosb_backwards_with_df(mmio: MmioDriver) -> None:
    got = emul(mmio, 32, "f3 aa", rflags=R1 | DF, rdi=0xFEE00103, rcx=3, rax=0x77)
    done(got, 2)
    assert got["devlog"] == "w:103:1:77,w:102:1:77,w:101:1:77"
    assert got["rdi"] == "fee00100"


def test_rep_movsd_from_ram_to_the_device(mmio: MmioDriver) -> None:
    # F3 A5 = REP MOVS m32, m32: DS:ESI -> ES:EDI
    got = emul(mmio, 32, "f3 a5", rsi=0x2000, mem="2000:4433221188776655", rdi=0xFEE00200, rcx=2)
    done(got, 2)
    assert got["devlog"] == "w:200:4:11223344,w:204:4:55667788"
    assert (got["rsi"], got["rdi"], got["rcx"]) == ("2008", "fee00208", "0")


def test_movsb_from_the_device_to_ram(mmio: MmioDriver) -> None:
    # A4 = MOVS m8, m8 without REP: one byte, RCX untouched
    got = emul(mmio, 64, "a4", rsi=0xFEE00020, dev="20:ab", rdi=0x3000, rcx=99, peek="3000:2")
    done(got, 1)
    assert got["peek0"] == "ab00"
    assert (got["rsi"], got["rdi"], got["rcx"]) == ("fee00021", "3001", "63")


def test_rep_movsq_in_64_bit_mode(mmio: MmioDriver) -> None:
    got = emul(mmio, 64, "f3 48 a5", rsi=0xFEE00000, dev="0:0102030405060708090a0b0c0d0e0f10", rdi=0x5000,
               rcx=2, peek="5000:10")  # fmt: skip
    done(got, 3)
    assert got["peek0"] == "0102030405060708090a0b0c0d0e0f10"
    assert got["rcx"] == "0"


def test_rep_with_16_bit_addresses_uses_cx_di_only(mmio: MmioDriver) -> None:
    # 67 F3 AB in 32-bit code: CX counts, DI addresses, the upper halves stay (Vol. 2B REP, Table 3-4)
    got = emul(mmio, 32, "67 f3 ab", es=0xFEE00000, rdi=0xABCD0010, rcx=0xFFFF0002, rax=1)
    done(got, 3)
    assert got["devlog"] == "w:10:4:1,w:14:4:1"
    assert (got["rdi"], got["rcx"]) == ("abcd0018", "ffff0000")


def test_rep_with_zero_count_does_nothing(mmio: MmioDriver) -> None:
    got = emul(mmio, 32, "f3 ab", rdi=0xFEE00100, rcx=0)
    done(got, 2)
    assert got["devlog"] == "-"


def test_rep_stops_where_the_device_ends_and_keeps_rip(mmio: MmioDriver) -> None:
    # Iterations run while the device is an operand; the rest resumes in the guest (RIP unchanged).
    got = emul(mmio, 32, "f3 ab", rdi=0xFEE00FF8, rcx=4, rax=2)
    assert (got["status"], got["advanced"], got["rip"]) == ("done", "0", "1000"), got
    assert got["devlog"] == "w:ff8:4:2,w:ffc:4:2"
    assert (got["rdi"], got["rcx"], got["iters"]) == ("fee01000", "2", "2")


def test_lodsd(mmio: MmioDriver) -> None:
    got = emul(mmio, 32, "ad", rsi=0xFEE00030, dev="30:78563412")
    done(got, 1)
    assert (got["rax"], got["rsi"]) == ("12345678", "fee00034")


# ------------------------------------------------------------------------------ faults and refusals
def test_non_canonical_address_is_gp0(mmio: MmioDriver) -> None:
    # Vol. 3A 6.15 (#GP): a non-canonical memory reference in 64-bit mode; #SS(0) through RSP/RBP.
    got = emul(mmio, 64, "89 03", rbx=0x0000800000000000)
    assert (got["status"], got["fault"]) == ("fault", "13:1:0:0"), got
    got = emul(mmio, 64, "89 04 24", rsp=0x0000800000000000)
    assert (got["status"], got["fault"]) == ("fault", "12:1:0:0"), got
    assert (got["rip"], got["devlog"]) == ("1000", "-")


def test_unmapped_ram_side_is_a_page_fault(mmio: MmioDriver) -> None:
    # Vol. 3A 4.7: error code P=0, W/R, U/S from CPL; CR2 = the linear address.
    got = emul(mmio, 32, "a5", rsi=0x500000, rdi=0xFEE00000, cpl=3)
    assert (got["status"], got["fault"]) == ("fault", "14:1:4:500000"), got
    got = emul(mmio, 32, "a5", rsi=0xFEE00000, rdi=0x600010)
    assert got["fault"] == "14:1:2:600010", got
    assert (got["devlog"], got["rsi"]) == ("-", "fee00000")  # nothing done before the fault


def test_operand_outside_the_device_is_not_emulated(mmio: MmioDriver) -> None:
    got = emul(mmio, 32, "89 03", rbx=0x1000, rax=5)
    assert (got["status"], got["advanced"], got["devlog"]) == ("unsupported", "0", "-"), got


def test_access_straddling_the_device_end_is_not_emulated(mmio: MmioDriver) -> None:
    got = emul(mmio, 32, "89 03", rbx=0xFEE00FFE, map="fee01000:3000")
    assert (got["status"], got["devlog"]) == ("unsupported", "-"), got


def test_unknown_instruction_changes_nothing(mmio: MmioDriver) -> None:
    got = emul(mmio, 32, "0f 0b", rax=1)
    assert (got["status"], got["rip"], got["rax"]) == ("undecodable", "1000", "1"), got
    assert got["fetched"] == "15"  # bytes fetched


def test_fetch_stops_at_an_unmapped_next_page(mmio: MmioDriver) -> None:
    # The identity map ends at 2 MiB: 2 bytes of code fit, the rest of the 15 are not fetched.
    got = emul(mmio, 32, "89 03", rip=0x1FFFFE, rbx=0xFEE00080, rax=3)
    done(got, 2, rip=0x1FFFFE)
    assert (got["fetched"], got["devlog"]) == ("2", "w:80:4:3")
    got = emul(mmio, 32, "89 05", rip=0x1FFFFE)  # the disp32 would be on the unmapped page
    assert got["status"] == "undecodable", got


def test_fetch_crosses_into_a_mapped_next_page(mmio: MmioDriver) -> None:
    got = emul(mmio, 32, "a3 10 03 e0 fe", rip=0x1FFFFE, map="200000:1000", rax=4)
    done(got, 5, rip=0x1FFFFE)
    assert got["devlog"] == "w:310:4:4"


# ------------------------------------------------- the xAPIC's register-file policy (mmio_reg32_*)
# SDM Vol. 3A 11.4.1: APIC registers are 32 bits at 16-byte aligned offsets, accessed with aligned
# 32-bit loads and stores only; other accesses are undefined and made harmless (hv/include/hv/mmio.h).
REG32: list[tuple[str, str, dict[str, int], str, str]] = [
    ("aligned 32-bit store reaches the register", "89 03", {"rbx": 0xFEE00080, "rax": 0x20}, "w:80:4:20",
     "20000000"),
    ("REX.W store: the low 32 bits reach it, the reserved half is not written", "48 89 03",
     {"rbx": 0xFEE00080, "rax": 0x11_00000020}, "w:80:4:20", "2000000000000000"),
    ("byte store into a register is dropped", "88 03", {"rbx": 0xFEE00081, "rax": 0xFF}, "drop:81:1",
     "55555555"),
    ("16-bit store is dropped", "66 89 03", {"rbx": 0xFEE00080, "rax": 0xFFFF}, "drop:80:2", "55555555"),
    ("misaligned 32-bit store is dropped", "89 03", {"rbx": 0xFEE00082, "rax": 1}, "drop:82:4", "55555555"),
    ("store to the reserved bytes of a slot is dropped", "89 03", {"rbx": 0xFEE00084, "rax": 1}, "drop:84:4",
     "55555555"),
]  # fmt: skip


@pytest.mark.parametrize("case", [r[1:] for r in REG32], ids=[r[0] for r in REG32])
def test_register_file_writes(mmio: MmioDriver, case: tuple[str, dict[str, int], str, str]) -> None:
    code, regs, log, peek = case
    got = emul(mmio, 64, code, devkind="reg32", dev="80:5555555500000000", devpeek=f"80:{len(peek) // 2:x}",
               **regs)  # fmt: skip
    done(got, len(bytes.fromhex(code)))
    assert got["devlog"] == log
    assert got["devpeek0"] == peek


@pytest.mark.parametrize(
    ("code", "rbx", "want", "log"),
    [
        ("8b 03", 0xFEE00080, "44332211", "R:80"),  # the register
        ("8a 03", 0xFEE00082, "33", "R:80"),  # a byte of it
        ("66 8b 03", 0xFEE00081, "3322", "R:80"),  # a misaligned word inside it
        ("48 8b 03", 0xFEE00080, "44332211", "R:80"),  # 8 bytes: the register, reserved bytes as 0
        ("8b 03", 0xFEE00084, "0", ""),  # reserved bytes only: no register read at all
        (
            "48 8b 03",
            0xFEE0008C,
            "9988776600000000",
            "R:90",
        ),  # 4 reserved bytes, then the next register's low 4
    ],
)
def test_register_file_reads(mmio: MmioDriver, code: str, rbx: int, want: str, log: str) -> None:
    got = emul(mmio, 64, code, devkind="reg32", rbx=rbx, dev=["80:11223344aaaaaaaa", "90:66778899bbbbbbbb"])
    done(got, len(bytes.fromhex(code)))
    assert got["rax"] == want
    assert got["devlog"] == (log or "-")


def test_lock_or_on_a_register_reads_it_then_writes_it(mmio: MmioDriver) -> None:
    # F0 83 /1 ib on the TPR (offset 80h), as mbtest does on the real xAPIC
    got = emul(mmio, 32, "f0 83 0d 80 00 e0 fe 20", devkind="reg32", dev="80:10000000")
    done(got, 8)
    assert got["devlog"] == "R:80,w:80:4:30"


def test_an_access_into_an_unmapped_next_page_faults_there(mmio: MmioDriver) -> None:
    # CR2 is the first byte the guest's tables do not map (Vol. 3A 4.7): 0x200000, past the 2 MiB identity map
    got = emul(mmio, 32, "89 03", rbx=0x1FFFFE, rax=1)
    assert got["status"] == "fault", got
    assert got["fault"] == "14:1:2:200000", got


@pytest.mark.parametrize(
    ("code", "log", "rdi", "rcx"),
    [
        # F3 AB in 16-bit code = REP STOSW: CX counts, ES:DI, the upper halves of ECX/EDI stay
        ("f3 ab", "w:10:2:beef,w:12:2:beef", "abcd0014", "ffff0000"),
        # 66 F3 AB in 16-bit code = REP STOSD (Vol. 1 3.6: 66 selects 32-bit operands)
        ("66 f3 ab", "w:10:4:deadbeef,w:14:4:deadbeef", "abcd0018", "ffff0000"),
    ],
)
def test_rep_stos_in_16_bit_code(mmio: MmioDriver, code: str, log: str, rdi: str, rcx: str) -> None:
    got = emul(mmio, 16, code, es=0xFEE00000, rdi=0xABCD0010, rcx=0xFFFF0002, rax=0xDEADBEEF)
    done(got, len(bytes.fromhex(code)))
    assert got["devlog"] == log
    assert (got["rdi"], got["rcx"]) == (rdi, rcx)


def test_rep_stosq_in_64_bit_mode(mmio: MmioDriver) -> None:
    # F3 REX.W AB = REP STOS m64 with RCX, RDI
    got = emul(mmio, 64, "f3 48 ab", rdi=0xFEE00040, rcx=2, rax=0x0102030405060708)
    done(got, 3)
    assert got["devlog"] == "w:40:8:102030405060708,w:48:8:102030405060708"
    assert (got["rdi"], got["rcx"]) == ("fee00050", "0")
