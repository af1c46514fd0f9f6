"""The MMIO instruction decoder (hv/core/mmio_decode.c), compiled natively by tests/native (the
hypervisor's own source under ASan/UBSan) and driven case by case through tests/native/test_mmio.c.

Byte sequences come from the Intel SDM (Order No. 325462, Dec 2023): the opcode column of each
instruction's page in Vol. 2A/2B, the opcode map of Vol. 2D Appendix A (Table A-2 one-byte, A-3
two-byte, A-6 opcode extensions by ModRM.reg), the addressing tables of Vol. 2A 2.1.5 (Table 2-1
16-bit ModRM, Table 2-2 32-bit ModRM, Table 2-3 SIB), REX (2.2.1, Table 2-4; 2.2.1.2 byte registers,
2.2.1.6 / Table 2-7 RIP-relative), the prefix groups (2.1.1) and Vol. 1 3.6 / Table 3-4 (operand and
address size attributes). Each case names the page or table it is from.
"""

from __future__ import annotations

import pytest

from tests.unit.mmio_native import MmioDriver

DS, SS, ES, FS, GS = "ds", "ss", "es", "fs", "gs"
# enum mmio_op (hv/include/hv/mmio.h)
MOV_STORE, MOV_LOAD, MOVZX, MOVSX, ALU_STORE, ALU_LOAD, TEST, XCHG, XADD, CMPXCHG, BT, UNARY = range(12)
STOS, LODS, MOVS = 12, 13, 14


def dec(drv: MmioDriver, bits: int, code: str, **regs: int) -> dict[str, str]:
    return drv.run(mode="decode", bits=bits, bytes=code, **regs)


# (bits, bytes, registers, expected decode fields) -- "ea" is the effective address in the segment.
FORMS: list[tuple[str, int, str, dict[str, int], dict[str, object]]] = [
    # ---- 16-bit addressing, Vol. 2A Table 2-1 ----
    (
        "MOV [BX+SI],AX (89 /r, T2-1 mod00 r/m000)",
        16,
        "89 00",
        {"rbx": 0x100, "rsi": 0x20},
        {"len": 2, "op": MOV_STORE, "size": 2, "addr": 16, "seg": DS, "ea": 0x120, "reg": 0},
    ),
    (
        "MOV [BP+SI+10h],AX (T2-1 mod01 r/m010: SS)",
        16,
        "89 42 10",
        {"rbp": 0x1000, "rsi": 4},
        {"len": 3, "seg": SS, "ea": 0x1014},
    ),
    (
        "MOV [0080h],BX (T2-1 mod00 r/m110: disp16)",
        16,
        "89 1e 80 00",
        {},
        {"len": 4, "seg": DS, "ea": 0x80, "reg": 3},
    ),
    (
        "MOV [BP+disp16],AX wraps at 64 KiB (T2-1 mod10 r/m110)",
        16,
        "89 86 fe ff",
        {"rbp": 0x10},
        {"len": 4, "seg": SS, "ea": 0xE},
    ),
    ("MOV [BX],EAX with 66 (Vol. 1 3.6)", 16, "66 89 07", {"rbx": 0x40}, {"len": 3, "size": 4, "ea": 0x40}),
    (
        "MOV [ESP],AX with 67: 32-bit addressing, SIB (T2-3 base 100)",
        16,
        "67 89 04 24",
        {"rsp": 0x12345},
        {"len": 4, "addr": 32, "seg": SS, "ea": 0x12345},
    ),
    ("MOV ES:[DI],AX (26 prefix, 2.1.1 group 2)", 16, "26 89 05", {"rdi": 0x300}, {"seg": ES, "ea": 0x300}),
    (
        "MOV word [0300h],0C500h (C7 /0 iw)",
        16,
        "c7 06 00 03 00 c5",
        {},
        {"len": 6, "size": 2, "ea": 0x300, "has_imm": 1, "imm": 0xC500},
    ),
    (
        "MOV moffs16,AX (A3, Vol. 2B MOV: moffs is address-sized)",
        16,
        "a3 10 03",
        {},
        {"len": 3, "size": 2, "ea": 0x310, "has_reg": 1, "reg": 0},
    ),
    # ---- 32-bit addressing, Vol. 2A Tables 2-2 and 2-3 ----
    (
        "MOV moffs32,EAX (A3: the public test suite's ICR-high store)",
        32,
        "a3 10 03 e0 fe",
        {},
        {"len": 5, "op": MOV_STORE, "size": 4, "addr": 32, "seg": DS, "ea": 0xFEE00310, "reg": 0},
    ),
    ("MOV AL,moffs8 (A0)", 32, "a0 20 00 e0 fe", {}, {"len": 5, "op": MOV_LOAD, "size": 1, "ea": 0xFEE00020}),
    ("MOV EAX,moffs32 (A1)", 32, "a1 20 00 e0 fe", {}, {"len": 5, "op": MOV_LOAD, "size": 4}),
    ("MOV moffs8,AL (A2)", 32, "a2 20 00 e0 fe", {}, {"len": 5, "op": MOV_STORE, "size": 1}),
    (
        "MOV [disp32],ECX (T2-2 mod00 r/m101)",
        32,
        "89 0d 80 00 e0 fe",
        {},
        {"len": 6, "ea": 0xFEE00080, "reg": 1, "riprel": 0},
    ),
    (
        "MOV [EBX+ECX*4+8],EAX (T2-3 SIB 8B, disp8)",
        32,
        "89 44 8b 08",
        {"rbx": 0xFEE00000, "rcx": 4},
        {"len": 4, "ea": 0xFEE00018, "seg": DS},
    ),
    (
        "MOV [ECX*4+disp32],EAX (T2-3 base 101 with mod00: no base)",
        32,
        "89 04 8d 00 00 e0 fe",
        {"rcx": 0x20},
        {"len": 7, "ea": 0xFEE00080},
    ),
    (
        "MOV [EBP-4],EAX (T2-2 mod01 r/m101: SS)",
        32,
        "89 45 fc",
        {"rbp": 0x2000},
        {"len": 3, "seg": SS, "ea": 0x1FFC},
    ),
    (
        "MOV [ESP+disp32],EAX (SIB 24, mod10)",
        32,
        "89 84 24 80 00 00 00",
        {"rsp": 0x1000},
        {"len": 7, "seg": SS, "ea": 0x1080},
    ),
    ("MOV FS:[EBX],EAX (64 prefix)", 32, "64 89 03", {"rbx": 0x80}, {"seg": FS, "ea": 0x80}),
    (
        "MOV [BX],EAX with 67 in 32-bit code: 16-bit address",
        32,
        "67 89 07",
        {"rbx": 0x12345},
        {"addr": 16, "ea": 0x2345, "len": 3},
    ),
    ("MOV [EBX+10h] wraps at 4 GiB", 32, "89 43 10", {"rbx": 0xFFFFFFF8}, {"ea": 0x8}),
    (
        "MOV dword [disp32],10h (C7 /0 id)",
        32,
        "c7 05 80 00 e0 fe 10 00 00 00",
        {},
        {"len": 10, "size": 4, "imm": 0x10, "has_imm": 1},
    ),
    ("MOV byte [disp32],7Fh (C6 /0 ib)", 32, "c6 05 80 00 e0 fe 7f", {}, {"len": 7, "size": 1, "imm": 0x7F}),
    (
        "MOV [disp32],AH (88 /r, reg 100 without REX is AH: 2.2.1.2)",
        32,
        "88 25 80 00 e0 fe",
        {},
        {"len": 6, "size": 1, "reg": 0, "high8": 1},
    ),
    (
        "MOV word [disp32],1234h (66 C7 /0 iw)",
        32,
        "66 c7 05 80 00 e0 fe 34 12",
        {},
        {"len": 9, "size": 2, "imm": 0x1234},
    ),
    ("MOV ECX,[EAX] (8B /r)", 32, "8b 08", {"rax": 0x500}, {"op": MOV_LOAD, "reg": 1, "ea": 0x500, "len": 2}),
    ("MOV CL,[EAX] (8A /r)", 32, "8a 08", {"rax": 0x500}, {"op": MOV_LOAD, "size": 1, "len": 2}),
    (
        "XRELEASE MOV [EAX],ECX (F3 89: Vol. 2B XACQUIRE/XRELEASE)",
        32,
        "f3 89 08",
        {},
        {"len": 3, "op": MOV_STORE},
    ),
    # ---- 64-bit mode: REX (2.2.1), RIP-relative (2.2.1.6, Table 2-7) ----
    (
        "MOV [RIP-10],EAX (RIP of the next instruction)",
        64,
        "89 05 f6 ff ff ff",
        {"rip": 0x1000},
        {"len": 6, "riprel": 1, "ea": 0xFFC, "addr": 64},
    ),
    (
        "MOV [RIP+100h],RAX (REX.W 89)",
        64,
        "48 89 05 00 01 00 00",
        {"rip": 0x2000},
        {"len": 7, "size": 8, "ea": 0x2107},
    ),
    (
        "MOV dword [RIP+disp32],imm32: next RIP is after the immediate",
        64,
        "c7 05 f6 0f 00 00 10 00 00 00",
        {"rip": 0x3000},
        {"len": 10, "ea": 0x3000 + 10 + 0xFF6, "imm": 0x10},
    ),
    (
        "MOV [EIP+disp32] with 67 (RIP-relative, 32-bit address)",
        64,
        "67 89 05 00 00 00 00",
        {"rip": 0x1_0000_0000 - 7},
        {"len": 7, "addr": 32, "ea": 0, "riprel": 1},
    ),
    (
        "MOV qword [RAX],-1 (REX.W C7 /0 id: imm32 sign-extended)",
        64,
        "48 c7 00 ff ff ff ff",
        {},
        {"len": 7, "size": 8, "imm": 0xFFFFFFFFFFFFFFFF},
    ),
    (
        "MOV [R12],EAX (REX.B, SIB base 100 = R12: DS, not SS)",
        64,
        "41 89 04 24",
        {"r12": 0xFEE00080},
        {"len": 4, "seg": DS, "ea": 0xFEE00080},
    ),
    (
        "MOV [R13+0],EAX (REX.B, mod01 r/m101 = R13 + disp8)",
        64,
        "41 89 45 00",
        {"r13": 0x4000},
        {"len": 4, "seg": DS, "ea": 0x4000},
    ),
    (
        "MOV [R12*1+disp32],EAX (REX.X: index 100 is R12)",
        64,
        "42 89 04 25 80 00 00 00",
        {"r12": 0x1000},
        {"len": 8, "ea": 0x1080},
    ),
    (
        "MOV [disp32],EAX in 64-bit (SIB 25: no base, no index; disp sign-extended)",
        64,
        "89 04 25 80 00 e0 fe",
        {},
        {"len": 7, "ea": 0xFFFFFFFFFEE00080, "riprel": 0},
    ),
    (
        "MOV [RBX+RCX*4],R15D (REX.R)",
        64,
        "44 89 3c 8b",
        {"rbx": 0x100, "rcx": 2},
        {"reg": 15, "ea": 0x108, "len": 4},
    ),
    ("MOV [RAX],SIL (any REX: reg 110 is SIL)", 64, "40 88 30", {}, {"reg": 6, "high8": 0, "size": 1}),
    ("MOV [RAX],DH (no REX: reg 110 is DH)", 64, "88 30", {}, {"reg": 2, "high8": 1, "size": 1}),
    (
        "MOV [EBX],EAX with 67 in 64-bit code",
        64,
        "67 89 03",
        {"rbx": 0x1_0000_0010},
        {"addr": 32, "ea": 0x10},
    ),
    (
        "MOV moffs64,RAX (REX.W A3, 8-byte offset)",
        64,
        "48 a3 80 00 e0 fe 00 00 00 00",
        {},
        {"len": 10, "size": 8, "ea": 0xFEE00080},
    ),
    (
        "MOV moffs32,EAX with 67 in 64-bit code",
        64,
        "67 a3 80 00 e0 fe",
        {},
        {"len": 6, "addr": 32, "ea": 0xFEE00080},
    ),
    (
        "MOV moffs64,EAX (A3 without 67: 8-byte offset)",
        64,
        "a3 10 03 e0 fe 00 00 00 00",
        {},
        {"len": 9, "size": 4, "ea": 0xFEE00310},
    ),
    ("MOV [RAX],CX (66)", 64, "66 89 08", {}, {"size": 2}),
    ("66 REX.W 89: REX.W wins (Table 3-4)", 64, "66 48 89 08", {}, {"size": 8}),
    ("REX then 66: the REX is ignored (2.2.1)", 64, "48 66 89 08", {}, {"size": 2, "len": 4}),
    ("MOV GS:[disp32],EAX (65)", 64, "65 89 04 25 80 00 00 00", {}, {"seg": GS, "ea": 0x80}),
    ("CS override ignored in 64-bit mode (Vol. 1 3.3.7.1)", 64, "2e 89 03", {"rbx": 0x10}, {"seg": DS}),
    ("MOV [RSP+8],EAX (SIB base RSP: SS)", 64, "89 44 24 08", {"rsp": 0x8000}, {"seg": SS, "ea": 0x8008}),
    (
        "longest legal: 9 x 66 + 89 05 disp32 = 15 bytes",
        64,
        "66" * 9 + "89 05 00 00 00 00",
        {},
        {"len": 15, "size": 2},
    ),
    # ---- read-modify-write and other forms (Table A-2, A-3, A-6) ----
    ("XCHG [EAX],CL (86 /r)", 32, "86 08", {}, {"op": XCHG, "size": 1, "reg": 1}),
    ("XCHG [EAX],ECX (87 /r)", 32, "87 08", {}, {"op": XCHG, "size": 4}),
    ("LOCK OR [EAX],ECX (F0 09 /r)", 32, "f0 09 08", {}, {"op": ALU_STORE, "alu": 1, "lock": 1}),
    ("OR [EAX],CL (08 /r)", 32, "08 08", {}, {"op": ALU_STORE, "alu": 1, "size": 1}),
    ("LOCK AND [EAX],ECX (21 /r)", 32, "f0 21 08", {}, {"alu": 4, "lock": 1}),
    ("AND [EAX],CL (20 /r)", 32, "20 08", {}, {"alu": 4, "size": 1}),
    ("LOCK ADD [EAX],ECX (01 /r)", 32, "f0 01 08", {}, {"alu": 0, "lock": 1}),
    ("ADD [EAX],CL (00 /r)", 32, "00 08", {}, {"alu": 0, "size": 1}),
    ("XOR [EAX],ECX (31 /r)", 32, "31 08", {}, {"alu": 6}),
    ("XOR [EAX],CL (30 /r)", 32, "30 08", {}, {"alu": 6, "size": 1}),
    ("SUB [EAX],ECX (29 /r)", 32, "29 08", {}, {"alu": 5}),
    ("SUB [EAX],CL (28 /r)", 32, "28 08", {}, {"alu": 5, "size": 1}),
    ("ADD ECX,[EAX] (03 /r)", 32, "03 08", {}, {"op": ALU_LOAD, "alu": 0}),
    ("CMP [EAX],ECX (39 /r)", 32, "39 08", {}, {"op": ALU_STORE, "alu": 7}),
    ("LOCK ADD byte [EAX],1 (80 /0 ib)", 32, "f0 80 00 01", {}, {"alu": 0, "size": 1, "imm": 1, "len": 4}),
    (
        "LOCK OR dword [EAX],10000h (81 /1 id)",
        32,
        "f0 81 08 00 00 01 00",
        {},
        {"alu": 1, "imm": 0x10000, "len": 7},
    ),
    (
        "LOCK OR dword [disp32],10h (83 /1 ib)",
        32,
        "f0 83 0d 80 00 e0 fe 10",
        {},
        {"alu": 1, "imm": 0x10, "len": 8, "ea": 0xFEE00080},
    ),
    ("AND dword [EAX],-2 (83 /4 ib sign-extended)", 32, "83 20 fe", {}, {"alu": 4, "imm": 0xFFFFFFFE}),
    ("ADC [EAX],1 (83 /2)", 32, "83 10 01", {}, {"alu": 2}),
    ("SBB [EAX],1 (83 /3)", 32, "83 18 01", {}, {"alu": 3}),
    ("SUB [EAX],1 (83 /5)", 32, "83 28 01", {}, {"alu": 5}),
    ("XOR [EAX],1 (83 /6)", 32, "83 30 01", {}, {"alu": 6}),
    ("CMP [EAX],1 (83 /7)", 32, "83 38 01", {}, {"alu": 7}),
    ("AND word [EAX],0FF00h (66 81 /4 iw)", 32, "66 81 20 00 ff", {}, {"size": 2, "imm": 0xFF00, "len": 5}),
    (
        "OR qword [RAX],-1 (REX.W 81 /1 id sign-extended)",
        64,
        "48 81 08 ff ff ff ff",
        {},
        {"size": 8, "imm": 0xFFFFFFFFFFFFFFFF, "len": 7},
    ),
    ("ADD byte [EAX],1 (82 /0: 80 alias outside 64-bit mode)", 32, "82 00 01", {}, {"alu": 0, "size": 1}),
    ("LOCK XADD [EAX],ECX (0F C1 /r)", 32, "f0 0f c1 08", {}, {"op": XADD, "len": 4}),
    ("XADD [EAX],CL (0F C0 /r)", 32, "0f c0 08", {}, {"op": XADD, "size": 1}),
    ("LOCK CMPXCHG [EAX],ECX (0F B1 /r)", 32, "f0 0f b1 08", {}, {"op": CMPXCHG, "len": 4}),
    ("CMPXCHG [EAX],CL (0F B0 /r)", 32, "0f b0 08", {}, {"op": CMPXCHG, "size": 1}),
    ("LOCK BTS [EAX],ECX (0F AB /r)", 32, "f0 0f ab 08", {}, {"op": BT, "alu": 5}),
    ("LOCK BTR [EAX],ECX (0F B3 /r)", 32, "f0 0f b3 08", {}, {"op": BT, "alu": 6}),
    ("BT [EAX],ECX (0F A3 /r)", 32, "0f a3 08", {}, {"op": BT, "alu": 4}),
    ("LOCK BTC [EAX],ECX (0F BB /r)", 32, "f0 0f bb 08", {}, {"op": BT, "alu": 7}),
    ("LOCK BTS [EAX],3 (0F BA /5 ib)", 32, "f0 0f ba 28 03", {}, {"op": BT, "alu": 5, "imm": 3, "len": 5}),
    ("LOCK BTR [EAX],3 (0F BA /6 ib)", 32, "f0 0f ba 30 03", {}, {"op": BT, "alu": 6, "imm": 3}),
    ("BT [EAX],3 (0F BA /4 ib)", 32, "0f ba 20 03", {}, {"op": BT, "alu": 4}),
    ("MOVZX ECX,byte [EAX] (0F B6 /r)", 32, "0f b6 08", {}, {"op": MOVZX, "size": 4, "src_size": 1}),
    ("MOVZX ECX,word [EAX] (0F B7 /r)", 32, "0f b7 08", {}, {"op": MOVZX, "src_size": 2}),
    ("MOVSX ECX,byte [EAX] (0F BE /r)", 32, "0f be 08", {}, {"op": MOVSX, "src_size": 1}),
    ("TEST [EAX],ECX (85 /r)", 32, "85 08", {}, {"op": TEST, "size": 4}),
    ("TEST [EAX],CL (84 /r)", 32, "84 08", {}, {"op": TEST, "size": 1}),
    ("TEST dword [EAX],100h (F7 /0 id)", 32, "f7 00 00 01 00 00", {}, {"op": TEST, "imm": 0x100, "len": 6}),
    ("LOCK INC dword [EAX] (FF /0)", 32, "f0 ff 00", {}, {"op": UNARY, "alu": 0}),
    ("LOCK DEC byte [EAX] (FE /1)", 32, "f0 fe 08", {}, {"op": UNARY, "alu": 1, "size": 1}),
    ("LOCK NOT dword [EAX] (F7 /2)", 32, "f0 f7 10", {}, {"op": UNARY, "alu": 2}),
    ("LOCK NEG dword [EAX] (F7 /3)", 32, "f0 f7 18", {}, {"op": UNARY, "alu": 3}),
    # ---- string instructions (Vol. 2B STOS, MOVS; Vol. 2A LODS; REP prefix page) ----
    (
        "STOSB (AA): ES:EDI",
        32,
        "aa",
        {"rdi": 0x1234},
        {"op": STOS, "size": 1, "seg": ES, "ea": 0x1234, "rep": 0},
    ),
    ("REP STOSD (F3 AB)", 32, "f3 ab", {"rdi": 0x10}, {"op": STOS, "size": 4, "rep": 1, "len": 2}),
    ("REP STOSQ (F3 REX.W AB)", 64, "f3 48 ab", {}, {"size": 8, "rep": 1, "len": 3}),
    ("REP STOSW (66 F3 AB)", 32, "66 f3 ab", {}, {"size": 2, "rep": 1}),
    ("MOVSB (A4): DS:ESI source", 32, "a4", {"rsi": 0x40}, {"op": MOVS, "size": 1, "seg": DS, "ea": 0x40}),
    ("REP MOVSD with FS source override (64 F3 A5)", 32, "64 f3 a5", {}, {"op": MOVS, "seg": FS, "rep": 1}),
    (
        "REP MOVSW with 16-bit addresses in 32-bit code (67 F3 66 A5)",
        32,
        "67 f3 66 a5",
        {"rsi": 0x12345},
        {"addr": 16, "size": 2, "ea": 0x2345},
    ),
    ("LODSD (AD)", 32, "ad", {}, {"op": LODS, "size": 4}),
]


@pytest.mark.parametrize(("bits", "code", "regs", "want"), [f[1:] for f in FORMS], ids=[f[0] for f in FORMS])
def test_decodes(
    mmio: MmioDriver, bits: int, code: str, regs: dict[str, int], want: dict[str, object]
) -> None:
    got = dec(mmio, bits, code, **regs)
    assert got["status"] == "decoded", got
    for key, value in want.items():
        expect = value if isinstance(value, str) else f"{value:x}" if key in ("ea", "imm") else str(value)
        assert got[key] == expect, (key, got)


REJECTED: list[tuple[str, int, str]] = [
    ("UD2 (0F 0B, Vol. 2B UD)", 32, "0f 0b"),
    ("NOP (90)", 32, "90"),
    ("LEA (8D /r) accesses no memory", 32, "8d 03"),
    ("MOV EAX,ECX: ModRM mod 11 is a register (T2-2)", 32, "89 c8"),
    ("C7 /1 is not MOV (Table A-6 group 11)", 32, "c7 08 00 00 00 00"),
    ("truncated: opcode only", 32, "89"),
    ("truncated: displacement", 32, "89 05 00 00"),
    ("truncated: immediate", 32, "c7 05 80 00 e0 fe 10 00"),
    ("truncated: SIB missing", 64, "89 04"),
    ("prefixes only", 32, "66 67 f0"),
    ("16 bytes: 10 x 66 + 89 05 disp32 (over 15 bytes, Vol. 2A 2.3.11)", 64, "66" * 10 + "89 05 00 00 00 00"),
    ("LOCK MOV is #UD (Vol. 2A LOCK): left to the fallback", 32, "f0 89 03"),
    ("LOCK CMP is #UD", 32, "f0 39 03"),
    ("LOCK BT is #UD", 32, "f0 0f a3 03"),
    ("LOCK MOVZX is #UD", 32, "f0 0f b6 03"),
    ("F2 on MOV without LOCK", 32, "f2 89 03"),
    ("REPNE STOS (F2 AA)", 32, "f2 aa"),
    ("82 is invalid in 64-bit mode (Table A-2 i64)", 64, "82 00 01"),
    ("CALL [EAX] (FF /2)", 32, "ff 10"),
    ("DIV dword [EAX] (F7 /6)", 32, "f7 30"),
    ("0F BA /0 reserved (Table A-6 group 8)", 32, "0f ba 00 01"),
    ("CMPS (A7) is not emulated", 32, "a7"),
    ("POPCNT (F3 0F B8) is not emulated", 32, "f3 0f b8 03"),
    ("REX bytes only: 40-4F are REX in 64-bit mode (2.2.1)", 64, "40 40"),
]


@pytest.mark.parametrize(("bits", "code"), [r[1:] for r in REJECTED], ids=[r[0] for r in REJECTED])
def test_rejects(mmio: MmioDriver, bits: int, code: str) -> None:
    assert dec(mmio, bits, code)["status"] == "undecodable"


def test_the_public_suites_icr_store_also_decodes_in_16_bit_code_with_67(mmio: MmioDriver) -> None:
    # A3 with 67 in 16-bit code: a 32-bit moffs (Vol. 1 3.6), the same 5 offset bytes as 32-bit code.
    got = dec(mmio, 16, "67 66 a3 10 03 e0 fe")
    assert (got["len"], got["ea"], got["size"], got["addr"]) == ("7", "fee00310", "4", "32")
