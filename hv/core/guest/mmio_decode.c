/*
 * Decoder for the instructions that can touch a trapped MMIO page (mmio.h). References: SDM Vol. 2A
 * 2.1 (instruction format, legacy prefix groups 2.1.1), 2.1.5 (ModRM/SIB, Tables 2-1 16-bit and 2-2
 * 32-bit addressing, 2-3 SIB), 2.2.1 (REX, 2.2.1.6 RIP-relative addressing), 3.1.1.3 (operand and
 * address size attributes, Tables 3-3 and 3-4 in Vol. 1), Vol. 2D Appendix A (opcode map: Table A-2
 * one-byte, A-3 two-byte, A-6 opcode extensions by ModRM.reg).
 */
#include <hv/mmio.h>

struct cursor {
    const u8 *p;
    u32 at, avail;
    bool ok;
};

static u8 next8(struct cursor *c)
{
    if (c->at >= c->avail) {
        c->ok = false;      /* truncated, or past the 15-byte limit */
        return 0;
    }
    return c->p[c->at++];
}

/* A little-endian field of n bytes (displacement, immediate, moffs). */
static u64 next_le(struct cursor *c, u32 n)
{
    u64 v = 0;
    for (u32 i = 0; i < n; i++)
        v |= (u64)next8(c) << (8 * i);
    return v;
}

static u64 sext(u64 v, u32 bytes)
{
    u32 shift = 64 - 8 * bytes;
    return bytes >= 8 ? v : (u64)((i64)(v << shift) >> shift);
}

static u64 mask_bits(u64 v, u32 bits)
{
    return bits >= 64 ? v : v & ((1ull << bits) - 1);
}

#define REX_W 8
#define REX_R 4
#define REX_X 2
#define REX_B 1

struct prefixes {
    bool opsz, adsz, lock;
    u8 rep;             /* 0, 0xf2 or 0xf3 (the last one) */
    int seg;            /* -1: none */
    u8 rex;
};

/*
 * The memory operand of a ModRM byte (mod != 3): effective address, default segment SS for a BP/SP
 * base else DS (SDM Vol. 1 3.7.4 / Vol. 2A Tables 2-1 to 2-3). RIP-relative: *disp_rip is set and
 * the caller adds the next instruction's RIP once the length is known.
 */
static bool modrm_mem(struct cursor *c, struct vcpu *v, u8 modrm, const struct prefixes *px, struct mmio_insn *o,
                      u64 *disp_rip, bool is64)
{
    u32 mod = modrm >> 6, rm = modrm & 7;
    u64 ea = 0;
    int seg = VCPU_DS;
    if (mod == 3)
        return false;   /* a register operand: no memory access */
    if (o->addr_bits == 16) {
        /* Table 2-1: [BX+SI] [BX+DI] [BP+SI] [BP+DI] [SI] [DI] [BP]/disp16 [BX] */
        static const u8 base16[8] = { 3, 3, 5, 5, 0xff, 0xff, 5, 3 };
        static const u8 index16[8] = { 6, 7, 6, 7, 6, 7, 0xff, 0xff };
        if (mod == 0 && rm == 6) {
            ea = next_le(c, 2);
        } else {
            if (base16[rm] != 0xff)
                ea += vcpu_gpr(v, base16[rm]);
            if (index16[rm] != 0xff)
                ea += vcpu_gpr(v, index16[rm]);
            if (base16[rm] == 5)
                seg = VCPU_SS;
            ea += mod == 1 ? sext(next_le(c, 1), 1) : mod == 2 ? next_le(c, 2) : 0;
        }
    } else {
        int base = -1, index = -1;
        u32 scale = 0;
        if (rm == 4) {
            /* Table 2-3: SIB; index 100b (without REX.X) is none; base 101b with mod 00 is disp32 only */
            u8 sib = next8(c);
            scale = sib >> 6;
            index = ((sib >> 3) & 7) | (px->rex & REX_X ? 8 : 0);
            if (index == 4)
                index = -1;
            if ((sib & 7) == 5 && mod == 0)
                ea = sext(next_le(c, 4), 4);
            else
                base = (sib & 7) | (px->rex & REX_B ? 8 : 0);
        } else if (rm == 5 && mod == 0) {
            ea = sext(next_le(c, 4), 4);
            if (is64) {         /* 2.2.1.6: RIP + disp32 in 64-bit mode (the REX.B bit does not matter) */
                *disp_rip = ea;
                o->rip_relative = true;
                ea = 0;
            }
        } else {
            base = (int)rm | (px->rex & REX_B ? 8 : 0);
        }
        if (base >= 0) {
            ea += vcpu_gpr(v, (u32)base);
            if (base == 4 || base == 5)
                seg = VCPU_SS;
        }
        if (index >= 0)
            ea += vcpu_gpr(v, (u32)index) << scale;
        ea += mod == 1 ? sext(next_le(c, 1), 1) : mod == 2 ? sext(next_le(c, 4), 4) : 0;
    }
    o->ea = mask_bits(ea, o->addr_bits);
    o->seg = (u8)(px->seg >= 0 ? px->seg : seg);
    return c->ok;
}

/* An immediate of the operand size, at most 4 bytes (iz), sign-extended to 64 bits (Table A-1 "z"). */
static u64 imm_z(struct cursor *c, u32 size)
{
    u32 n = size > 4 ? 4 : size;
    return sext(next_le(c, n), n);
}

bool mmio_decode(const u8 *p, u32 avail, u32 code_bits, struct vcpu *v, struct mmio_insn *o)
{
    struct cursor c = { p, 0, avail > MMIO_INSN_MAX ? MMIO_INSN_MAX : avail, true };
    struct prefixes px = { .seg = -1 };
    bool is64 = code_bits == 64;
    u8 b;
    memset(o, 0, sizeof(*o));
    if (code_bits != 16 && code_bits != 32 && code_bits != 64)
        return false;
    /* Legacy prefixes in any order (2.1.1); REX counts only right before the opcode (2.2.1). */
    for (;;) {
        b = next8(&c);
        if (!c.ok)
            return false;
        if (is64 && (b & 0xf0) == 0x40) {
            px.rex = b;
            continue;
        }
        if (b == 0x66)
            px.opsz = true;
        else if (b == 0x67)
            px.adsz = true;
        else if (b == 0xf0)
            px.lock = true;
        else if (b == 0xf2 || b == 0xf3)
            px.rep = b;
        else if (b == 0x26 || b == 0x2e || b == 0x36 || b == 0x3e) {
            if (!is64)  /* ES CS SS DS overrides are ignored in 64-bit mode (Vol. 1 3.3.7.1) */
                px.seg = b == 0x26 ? VCPU_ES : b == 0x2e ? VCPU_CS : b == 0x36 ? VCPU_SS : VCPU_DS;
        } else if (b == 0x64 || b == 0x65)
            px.seg = b == 0x64 ? VCPU_FS : VCPU_GS;
        else
            break;
        px.rex = 0;     /* a REX followed by a legacy prefix is ignored */
    }
    /* Vol. 1 Table 3-4 (64-bit) and 3.6 (16/32-bit): 66 and 67 select the other size; REX.W wins over 66. */
    o->addr_bits = (u8)(is64 ? (px.adsz ? 32 : 64) : (code_bits == 32) != px.adsz ? 32 : 16);
    u32 vsize = is64 ? (px.rex & REX_W ? 8 : px.opsz ? 2 : 4) : (code_bits == 32) != px.opsz ? 4 : 2;
    o->lock = px.lock;

    u8 op = b;
    bool two = false;
    if (op == 0x0f) {
        two = true;
        op = next8(&c);
        if (!c.ok)
            return false;
    }
    bool modrm_form = true, byte_op = false;
    u32 imm_kind = 0;   /* 0 none, 1 ib, 2 iz, 3 ib sign-extended */
    bool reg_operand = false;
    u8 modrm = 0;

    if (!two) {
        if (op < 0x40 && (op & 7) < 4) {
            /* 00-3B: ADD OR ADC SBB AND SUB XOR CMP, Eb,Gb / Ev,Gv / Gb,Eb / Gv,Ev (Table A-2) */
            o->op = op & 2 ? MMIO_ALU_LOAD : MMIO_ALU_STORE;
            o->alu = op >> 3;
            byte_op = !(op & 1);
            reg_operand = true;
        } else if (op == 0x80 || op == 0x81 || op == 0x83 || (op == 0x82 && !is64)) {
            o->op = MMIO_ALU_STORE;      /* group 1, Eb,Ib / Ev,Iz / Ev,Ib (82 is invalid in 64-bit mode) */
            byte_op = op == 0x80 || op == 0x82;
            imm_kind = op == 0x81 ? 2 : op == 0x83 ? 3 : 1;
        } else if (op >= 0x84 && op <= 0x87) {
            o->op = op & 2 ? MMIO_XCHG : MMIO_TEST;     /* TEST / XCHG Eb,Gb / Ev,Gv */
            byte_op = !(op & 1);
            reg_operand = true;
        } else if (op >= 0x88 && op <= 0x8b) {
            o->op = op & 2 ? MMIO_MOV_LOAD : MMIO_MOV_STORE;
            byte_op = !(op & 1);
            reg_operand = true;
        } else if (op == 0xc6 || op == 0xc7) {
            o->op = MMIO_MOV_STORE;      /* group 11: /0 MOV Eb,Ib / Ev,Iz only */
            byte_op = op == 0xc6;
            imm_kind = byte_op ? 1 : 2;
        } else if (op == 0xf6 || op == 0xf7) {
            byte_op = op == 0xf6;       /* group 3: /0 TEST Ib/Iz, /2 NOT, /3 NEG */
        } else if (op == 0xfe || op == 0xff) {
            byte_op = op == 0xfe;       /* group 4 / 5: /0 INC, /1 DEC */
        } else if (op >= 0xa0 && op <= 0xa3) {
            /* MOV AL/eAX <-> moffs: the offset is address-sized (Vol. 2B MOV, Table A-2 "O") */
            modrm_form = false;
            o->op = op & 2 ? MMIO_MOV_STORE : MMIO_MOV_LOAD;
            byte_op = !(op & 1);
            o->has_reg = true;
            o->reg = 0;
            o->ea = next_le(&c, o->addr_bits / 8);
            o->seg = (u8)(px.seg >= 0 ? px.seg : VCPU_DS);
        } else if (op == 0xa4 || op == 0xa5 || op == 0xaa || op == 0xab || op == 0xac || op == 0xad) {
            modrm_form = false;
            byte_op = !(op & 1);
            if (op <= 0xa5) {
                o->op = MMIO_MOVS;      /* DS:rSI (overridable) -> ES:rDI */
                o->seg = (u8)(px.seg >= 0 ? px.seg : VCPU_DS);
                o->ea = mask_bits(vcpu_gpr(v, 6), o->addr_bits);
            } else if (op <= 0xab) {
                o->op = MMIO_STOS;      /* -> ES:rDI, no override */
                o->seg = VCPU_ES;
                o->ea = mask_bits(vcpu_gpr(v, 7), o->addr_bits);
            } else {
                o->op = MMIO_LODS;      /* DS:rSI (overridable) */
                o->seg = (u8)(px.seg >= 0 ? px.seg : VCPU_DS);
                o->ea = mask_bits(vcpu_gpr(v, 6), o->addr_bits);
            }
            o->has_reg = op >= 0xaa;    /* STOS stores, LODS loads, the accumulator */
            o->reg = 0;
        } else {
            return false;
        }
    } else {
        if ((op | 1) == 0xb1 || (op | 1) == 0xc1) {
            o->op = op < 0xc0 ? MMIO_CMPXCHG : MMIO_XADD;  /* CMPXCHG / XADD Eb,Gb / Ev,Gv */
            byte_op = !(op & 1);
            reg_operand = true;
        } else if (op == 0xb6 || op == 0xb7 || op == 0xbe || op == 0xbf) {
            o->op = op & 8 ? MMIO_MOVSX : MMIO_MOVZX;
            o->src_size = op & 1 ? 2 : 1;
            reg_operand = true;
        } else if (op == 0xa3 || op == 0xab || op == 0xb3 || op == 0xbb) {
            o->op = MMIO_BT;            /* BT BTS BTR BTC Ev,Gv */
            o->alu = (u8)(MMIO_BIT_BT + ((op >> 3) & 3));
            reg_operand = true;
        } else if (op == 0xba) {
            o->op = MMIO_BT;            /* group 8: /4 BT /5 BTS /6 BTR /7 BTC Ev,Ib */
            imm_kind = 1;
        } else {
            return false;
        }
    }
    o->size = (u8)(byte_op ? 1 : vsize);

    u64 disp_rip = 0;
    if (modrm_form) {
        modrm = next8(&c);
        if (!c.ok)
            return false;
        u32 reg = (modrm >> 3) & 7;
        if (!two && (op == 0x80 || op == 0x81 || op == 0x82 || op == 0x83)) {
            o->alu = (u8)reg;
        } else if (!two && (op == 0xc6 || op == 0xc7) && reg != 0) {
            return false;
        } else if (!two && (op == 0xf6 || op == 0xf7)) {
            if (reg == 0) {
                o->op = MMIO_TEST;
                imm_kind = byte_op ? 1 : 2;
            } else if (reg == 2 || reg == 3) {
                o->op = MMIO_UNARY;
                o->alu = (u8)(reg == 2 ? MMIO_UN_NOT : MMIO_UN_NEG);
            } else {
                return false;           /* F6/F7 /1 (reserved), MUL IMUL DIV IDIV */
            }
        } else if (!two && (op == 0xfe || op == 0xff)) {
            if (reg > 1)
                return false;           /* CALL JMP PUSH (FF /2-/6) have no MMIO meaning here */
            o->op = MMIO_UNARY;
            o->alu = (u8)(reg == 0 ? MMIO_UN_INC : MMIO_UN_DEC);
        } else if (two && op == 0xba) {
            if (reg < 4)
                return false;           /* 0F BA /0-/3 are reserved */
            o->alu = (u8)reg;
        }
        if (reg_operand) {
            o->has_reg = true;
            o->reg = (u8)(reg | (px.rex & REX_R ? 8 : 0));
            /* byte registers 4-7 are AH CH DH BH without a REX prefix, SPL BPL SIL DIL with one (2.2.1.2) */
            if (byte_op && !px.rex && reg >= 4) {
                o->high8 = true;
                o->reg = (u8)(reg - 4);
            }
        }
        if (!modrm_mem(&c, v, modrm, &px, o, &disp_rip, is64))
            return false;
    }
    if (imm_kind) {
        o->has_imm = true;
        u64 imm = imm_kind == 2 ? imm_z(&c, o->size) : imm_kind == 3 ? sext(next_le(&c, 1), 1) : next_le(&c, 1);
        o->imm = mask_bits(imm, 8u * o->size);
    }
    if (!c.ok)
        return false;
    o->len = c.at;
    if (o->rip_relative)
        o->ea = mask_bits(v->ops->rip(v) + o->len + disp_rip, o->addr_bits);

    /* F2/F3: REP on the string instructions (F3 only: F2 is REPNE, meant for CMPS/SCAS); elsewhere only
     * as the XACQUIRE / XRELEASE hints (Vol. 2B XACQUIRE/XRELEASE: F2/F3 with LOCK, F3 with MOV stores). */
    bool string = o->op == MMIO_MOVS || o->op == MMIO_STOS || o->op == MMIO_LODS;
    if (string) {
        if (px.rep == 0xf2)
            return false;
        o->rep = px.rep == 0xf3;
    } else if (px.rep && !px.lock && !(px.rep == 0xf3 && o->op == MMIO_MOV_STORE && modrm_form)) {
        return false;
    }
    /* LOCK only on a read-modify-write of memory, else #UD (Vol. 2A LOCK): left to the fallback. */
    if (px.lock) {
        bool lockable = (o->op == MMIO_ALU_STORE && o->alu != MMIO_CMP) || o->op == MMIO_XCHG ||
                        o->op == MMIO_XADD || o->op == MMIO_CMPXCHG || o->op == MMIO_UNARY ||
                        (o->op == MMIO_BT && o->alu != MMIO_BIT_BT);
        if (!lockable)
            return false;
    }
    return true;
}
