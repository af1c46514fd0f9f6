"""The MMIO emulator (hv/core/mmio_emul.c over mmio_decode.c), compiled natively by tests/native with a
fake vcpu, a fake device page at 0xFEE00000 (every access logged as r|w:offset:size:value) and 2 MiB
of fake guest RAM (identity-mapped linear addresses; 'map'/'unmap' change single pages).

Instruction bytes are from the SDM Vol. 2A/2B instruction pages (opcode column) and Vol. 2D Appendix A
(Tables A-2, A-3, A-6); results follow each page's "Operation" and "Flags Affected" sections, RFLAGS
bits from Vol. 1 3.4.3 (CF 0, PF 2, AF 4, ZF 6, SF 7, DF 10, OF 11; bit 1 always 1).
"""

from __future__ import annotations

import pytest

from tests.unit.mmio_native import (
    AF,
    ALL,
    CF,
    OF,
    PF,
    R1,
    SF,
    ZF,
    MmioDriver,
    done,
    dword,
    emul,
    h,
)


# ---------------------------------------------------------------------------------------------- stores
def test_mov_moffs32_eax_the_public_suites_icr_high_store(mmio: MmioDriver) -> None:
    # Vol. 2B MOV: A3 = MOV moffs32, EAX. The ICR high word (destination APIC ID in bits 31:24).
    got = emul(mmio, 32, "a3 10 03 e0 fe", rax=0x01000000)
    done(got, 5)
    assert got["devlog"] == "w:310:4:1000000"


@pytest.mark.parametrize(
    ("bits", "code", "regs", "log"),
    [
        # 89 /r MOV r/m32, r32 with disp32 (Table 2-2 mod00 r/m101)
        (32, "89 0d 80 00 e0 fe", {"rcx": 0x10}, "w:80:4:10"),
        # C7 /0 id MOV r/m32, imm32
        (32, "c7 05 80 00 e0 fe 10 00 00 00", {}, "w:80:4:10"),
        # 88 /r with AH (2.2.1.2: no REX, reg 100 = AH)
        (32, "88 25 80 00 e0 fe", {"rax": 0x1234}, "w:80:1:12"),
        # C6 /0 ib
        (32, "c6 05 81 00 e0 fe 7f", {}, "w:81:1:7f"),
        # 66 C7 /0 iw
        (32, "66 c7 05 82 00 e0 fe 34 12", {}, "w:82:2:1234"),
        # A2 MOV moffs8, AL
        (32, "a2 20 00 e0 fe", {"rax": 0xAB}, "w:20:1:ab"),
        # REX.W 89 /r, [RBX]
        (64, "48 89 03", {"rbx": 0xFEE00080, "rax": 0x1122334455667788}, "w:80:8:1122334455667788"),
        # REX.W C7 /0 id: imm32 sign-extended to 64 bits
        (64, "48 c7 03 ff ff ff ff", {"rbx": 0xFEE00080}, "w:80:8:ffffffffffffffff"),
        # REX.B SIB base R12, REX.R source R9D
        (64, "45 89 0c 24", {"r12": 0xFEE000F0, "r9": 0xFFFFFFFF_87654321}, "w:f0:4:87654321"),
        # REX.W A3 MOV moffs64, RAX
        (64, "48 a3 80 00 e0 fe 00 00 00 00", {"rax": 5}, "w:80:8:5"),
        # FS override in 64-bit mode: FS.base counts; DS.base does not (Vol. 1 3.3.7.1)
        (64, "64 89 04 25 80 00 00 00", {"fs": 0xFEE00000, "rax": 7}, "w:80:4:7"),
        (64, "89 03", {"ds": 0x1000, "rbx": 0xFEE00080, "rax": 9}, "w:80:4:9"),
        # 16-bit code: 89 47 10 = MOV [BX+10h], AX (Table 2-1 mod01 r/m111), DS.base = the APIC page
        (16, "89 47 10", {"ds": 0xFEE00000, "rbx": 0x70, "rax": 0xABCD}, "w:80:2:abcd"),
        # 16-bit code: 66 A3 = MOV moffs16, EAX
        (16, "66 a3 10 03", {"ds": 0xFEE00000, "rax": 0x02000000}, "w:310:4:2000000"),
        # 32-bit code, ES override and a 16-bit address (67): ES:[DI]
        (32, "67 26 89 05", {"es": 0xFEE00000, "rdi": 0xFFFF0300, "rax": 1}, "w:300:4:1"),
        # F3 89 = XRELEASE MOV (a hint, Vol. 2B XACQUIRE/XRELEASE)
        (32, "f3 89 08", {"rax": 0xFEE00090, "rcx": 3}, "w:90:4:3"),
    ],
)
def test_stores(mmio: MmioDriver, bits: int, code: str, regs: dict[str, int], log: str) -> None:
    got = emul(mmio, bits, code, **regs)
    done(got, len(bytes.fromhex(code)))
    assert got["devlog"] == log


def test_rip_relative_load_uses_the_next_rip(mmio: MmioDriver) -> None:
    # 8B 05 disp32 = MOV EAX, [RIP+disp32] (2.2.1.6); linear page 0x200000 is the device.
    got = emul(mmio, 64, "8b 05 1a 10 00 00", rip=0x1FF000, map="200000:fee00000", dev="20:44332211",
               rax=0xFFFFFFFFFFFFFFFF)  # fmt: skip
    done(got, 6, rip=0x1FF000)
    assert got["devlog"] == "r:20:4:11223344"
    assert got["rax"] == "11223344"  # a 32-bit destination zero-extends (Vol. 1 3.4.1.1)


def test_code_is_fetched_at_cs_base_plus_ip_in_16_bit_code(mmio: MmioDriver) -> None:
    got = emul(mmio, 16, "89 07", cs=0x10000, rip=0x100, ds=0xFEE00000, rbx=0x80, rax=0x1234)
    done(got, 2, rip=0x100)
    assert got["devlog"] == "w:80:2:1234"


@pytest.mark.parametrize(
    ("code", "start", "want"),
    [
        ("8b 03", 0xFFFFFFFFFFFFFFFF, "ddccbbaa"),  # 32-bit load zero-extends
        ("66 8b 03", 0xFFFFFFFFFFFFFFFF, "ffffffffffffbbaa"),  # 16-bit load keeps the rest
        ("8a 23", 0xFFFFFFFFFFFF00FF, "ffffffffffffaaff"),  # AH
        ("0f b6 03", 0xFFFFFFFFFFFFFFFF, "aa"),  # MOVZX r32, r/m8 (0F B6)
        ("0f be 03", 0, "ffffffaa"),  # MOVSX r32, r/m8 (0F BE)
        ("0f b7 03", 0, "bbaa"),  # MOVZX r32, r/m16 (0F B7)
        ("48 0f bf 03", 0, "ffffffffffffbbaa"),  # MOVSX r64, r/m16 (REX.W 0F BF)
    ],
)
def test_loads(mmio: MmioDriver, code: str, start: int, want: str) -> None:
    got = emul(mmio, 64, code, rbx=0xFEE00040, rax=start, dev="40:aabbccdd")
    done(got, len(bytes.fromhex(code)))
    assert got["rax"] == want


# ----------------------------------------------------------------------------------------- RMW, flags
# (code, device dword before, registers, rflags before, device dword after, rflags after, registers after)
RMW: list[tuple[str, str, int, dict[str, int], int, int, int, dict[str, int]]] = [
    (
        "LOCK OR dword [m],10h (F0 83 /1 ib): PF of 0x11",
        "f0 83 0d 80 00 e0 fe 10",
        0x01,
        {},
        R1 | ALL,
        0x11,
        R1 | PF,
        {},
    ),
    (
        "LOCK OR [m],EAX (F0 09 /r)",
        "f0 09 05 80 00 e0 fe",
        0x80000000,
        {"rax": 1},
        R1,
        0x80000001,
        R1 | SF,
        {},
    ),
    (
        "LOCK AND [m],EAX (F0 21 /r)",
        "f0 21 05 80 00 e0 fe",
        0xFF00FF00,
        {"rax": 0x0F0F0F0F},
        R1 | CF | OF,
        0x0F000F00,
        R1 | PF,
        {},
    ),
    ("AND dword [m],0 (83 /4 ib): ZF", "83 25 80 00 e0 fe 00", 0x1234, {}, R1, 0, R1 | ZF | PF, {}),
    (
        "ADD [m],EAX (01 /r): signed overflow",
        "01 05 80 00 e0 fe",
        0x7FFFFFFF,
        {"rax": 1},
        R1,
        0x80000000,
        R1 | OF | SF | AF | PF,
        {},
    ),
    (
        "ADD dword [m],1 (83 /0): carry out, ZF",
        "83 05 80 00 e0 fe 01",
        0xFFFFFFFF,
        {},
        R1,
        0,
        R1 | CF | ZF | AF | PF,
        {},
    ),
    ("ADC [m],EAX (11 /r) with CF=1", "11 05 80 00 e0 fe", 1, {"rax": 1}, R1 | CF, 3, R1 | PF, {}),
    (
        "SUB [m],EAX (29 /r): borrow",
        "29 05 80 00 e0 fe",
        1,
        {"rax": 2},
        R1,
        0xFFFFFFFF,
        R1 | CF | SF | AF | PF,
        {},
    ),
    ("SBB [m],EAX (19 /r) with CF=1", "19 05 80 00 e0 fe", 5, {"rax": 1}, R1 | CF, 3, R1 | PF, {}),
    (
        "SUB dword [m],1 (83 /5): 80000000h - 1 overflows",
        "83 2d 80 00 e0 fe 01",
        0x80000000,
        {},
        R1,
        0x7FFFFFFF,
        R1 | OF | AF | PF,
        {},
    ),
    (
        "XOR [m],EAX (31 /r) to zero",
        "31 05 80 00 e0 fe",
        0xFFFFFFFF,
        {"rax": 0xFFFFFFFF},
        R1 | CF,
        0,
        R1 | ZF | PF,
        {},
    ),
    (
        "LOCK XADD [m],EAX (F0 0F C1 /r)",
        "f0 0f c1 05 80 00 e0 fe",
        10,
        {"rax": 5},
        R1,
        15,
        R1 | PF,
        {"rax": 10},
    ),
    (
        "LOCK CMPXCHG [m],ECX (F0 0F B1 /r): equal",
        "f0 0f b1 0d 80 00 e0 fe",
        7,
        {"rax": 7, "rcx": 9},
        R1,
        9,
        R1 | ZF | PF,
        {"rax": 7, "rcx": 9},
    ),
    ("LOCK BTS [m],EAX (F0 0F AB /r)", "f0 0f ab 05 80 00 e0 fe", 0, {"rax": 4}, R1 | CF, 0x10, R1, {}),
    ("LOCK BTR [m],4 (F0 0F BA /6 ib)", "f0 0f ba 35 80 00 e0 fe 04", 0x11, {}, R1, 0x01, R1 | CF, {}),
    (
        "LOCK BTS [m],24h (0F BA /5 ib): bit offset modulo 32",
        "f0 0f ba 2d 80 00 e0 fe 24",
        0,
        {},
        R1,
        0x10,
        R1,
        {},
    ),
    ("LOCK BTC [m],EAX (F0 0F BB /r)", "f0 0f bb 05 80 00 e0 fe", 0x1, {"rax": 0}, R1, 0, R1 | CF, {}),
    (
        "LOCK INC dword [m] (FF /0): CF kept",
        "f0 ff 05 80 00 e0 fe",
        0xFFFFFFFF,
        {},
        R1 | CF,
        0,
        R1 | CF | ZF | AF | PF,
        {},
    ),
    (
        "LOCK DEC dword [m] (FF /1): CF kept clear",
        "f0 ff 0d 80 00 e0 fe",
        0,
        {},
        R1,
        0xFFFFFFFF,
        R1 | SF | AF | PF,
        {},
    ),
    ("LOCK NEG dword [m] (F7 /3)", "f0 f7 1d 80 00 e0 fe", 1, {}, R1, 0xFFFFFFFF, R1 | CF | SF | AF | PF, {}),
    (
        "LOCK NOT dword [m] (F7 /2): no flags",
        "f0 f7 15 80 00 e0 fe",
        0x0F0F0F0F,
        {},
        R1 | ZF,
        0xF0F0F0F0,
        R1 | ZF,
        {},
    ),
    ("XCHG [m],EAX (87 /r)", "87 05 80 00 e0 fe", 0x10, {"rax": 0x20}, R1, 0x20, R1, {"rax": 0x10}),
]


@pytest.mark.parametrize("case", [r[1:] for r in RMW], ids=[r[0] for r in RMW])
def test_read_modify_write(
    mmio: MmioDriver, case: tuple[str, int, dict[str, int], int, int, int, dict[str, int]]
) -> None:
    code, before, regs, fl, after, fl_after, regs_after = case
    got = emul(mmio, 32, code, dev=f"80:{dword(before)}", rflags=fl, devpeek="80:4", **regs)
    done(got, len(bytes.fromhex(code)))
    assert got["devpeek0"] == dword(after), got
    assert got["rflags"] == h(fl_after), (h(fl_after), got)
    reads, writes = got["devlog"].split(",")
    assert (reads, writes) == (f"r:80:4:{before:x}", f"w:80:4:{after:x}")
    for reg, value in regs_after.items():
        assert got[reg] == h(value), (reg, got)


# (code, device value before, registers, access size, rflags after, registers after)
READ_ONLY: list[tuple[str, str, int, dict[str, int], int, int, dict[str, int]]] = [
    ("CMP r/m32, r32 (39 /r): flags only", "39 05 80 00 e0 fe", 5, {"rax": 5}, 4, R1 | ZF | PF, {}),
    ("TEST r/m32, imm32 (F7 /0 id)", "f7 05 80 00 e0 fe 00 01 00 00", 0x100, {}, 4, R1 | PF, {}),
    ("TEST r/m8, r8 (84 /r): zero result", "84 05 80 00 e0 fe", 0xF0, {"rax": 0x0F}, 1, R1 | ZF | PF, {}),
    ("BT r/m32, imm8 (0F BA /4 ib)", "0f ba 25 80 00 e0 fe 08", 0x100, {}, 4, R1 | CF, {}),
    ("ADD r32, r/m32 (03 /r): the register is the destination", "03 05 80 00 e0 fe", 2, {"rax": 1}, 4,
     R1 | PF, {"rax": 3}),
    ("CMP r32, r/m32 (3B /r) leaves the register alone", "3b 05 80 00 e0 fe", 2, {"rax": 1}, 4,
     R1 | CF | SF | AF | PF, {"rax": 1}),
    ("CMPXCHG not equal: EAX gets the destination, no write-back", "f0 0f b1 0d 80 00 e0 fe", 7,
     {"rax": 6, "rcx": 9}, 4, R1 | CF | SF | AF | PF, {"rax": 7}),
    ("TEST r/m32, r32 (85 /r)", "85 05 80 00 e0 fe", 0x80000000, {"rax": 0x80000001}, 4, R1 | SF | PF, {}),
    ("CMPXCHG r/m8, r8 (0F B0 /r) not equal: AL gets the byte, AH kept", "f0 0f b0 0d 80 00 e0 fe", 7,
     {"rax": 0x1206, "rcx": 9}, 1, R1 | CF | SF | AF | PF, {"rax": 0x1207}),
]  # fmt: skip


@pytest.mark.parametrize("case", [r[1:] for r in READ_ONLY], ids=[r[0] for r in READ_ONLY])
def test_read_only_forms_do_not_write_the_device(
    mmio: MmioDriver, case: tuple[str, int, dict[str, int], int, int, dict[str, int]]
) -> None:
    code, before, regs, size, fl_after, regs_after = case
    got = emul(mmio, 32, code, dev=f"80:{dword(before)}", **regs)
    done(got, len(bytes.fromhex(code)))
    assert got["devlog"] == f"r:80:{size}:{before:x}"
    assert got["rflags"] == h(fl_after), got
    for reg, value in regs_after.items():
        assert got[reg] == h(value), (reg, got)


def test_xadd_byte(mmio: MmioDriver) -> None:
    # 0F C0 /r XADD r/m8, r8 (AL): the byte gets the sum, AL the old byte, AH kept
    got = emul(mmio, 32, "0f c0 05 80 00 e0 fe", dev="80:34", rax=0x1201)
    done(got, 7)
    assert got["devlog"] == "r:80:1:34,w:80:1:35"
    assert got["rax"] == "1234"


def test_xchg_byte_with_ah(mmio: MmioDriver) -> None:
    # 86 /r XCHG r/m8, r8 with reg 100 = AH
    got = emul(mmio, 32, "86 25 80 00 e0 fe", dev="80:34", rax=0x1200)
    done(got, 6)
    assert got["devlog"] == "r:80:1:34,w:80:1:12"
    assert got["rax"] == "3400"


@pytest.mark.parametrize(
    ("rax", "offset", "bit"),
    [(36, 0x84, 4), (0xFFFFFFFF, 0x7C, 31), (0xFFFFFFE0, 0x7C, 0)],  # Vol. 2A BT: bit base + signed offset
)
def test_bts_register_offset_addresses_other_dwords(
    mmio: MmioDriver, rax: int, offset: int, bit: int
) -> None:
    got = emul(mmio, 32, "f0 0f ab 05 80 00 e0 fe", rax=rax)
    done(got, 8)
    assert got["devlog"] == f"r:{offset:x}:4:0,w:{offset:x}:4:{1 << bit:x}"
