/*
 * Emulation of one decoded MMIO instruction (mmio.h) against a device and guest RAM. Semantics and
 * flags from the SDM Vol. 2A/2B instruction pages (ADD ADC SUB SBB CMP AND OR XOR TEST INC DEC NEG NOT
 * XCHG XADD CMPXCHG BT BTS BTR BTC MOV MOVZX MOVSX MOVS STOS LODS REP), Vol. 1 3.4.3.1 (status flags).
 */
#include <hv/mmio.h>

#define FL_CF 0x001ull
#define FL_PF 0x004ull
#define FL_AF 0x010ull
#define FL_ZF 0x040ull
#define FL_SF 0x080ull
#define FL_DF 0x400ull
#define FL_OF 0x800ull
#define FL_ARITH (FL_CF | FL_PF | FL_AF | FL_ZF | FL_SF | FL_OF)

#define PF_ERR_W (1u << 1)
#define PF_ERR_U (1u << 2)

static u64 mask_of(u32 size)
{
    return size >= 8 ? ~0ull : (1ull << (8 * size)) - 1;
}

static u64 sign_bit(u32 size)
{
    return 1ull << (8 * size - 1);
}

/* SF ZF PF of a result (PF: even parity of the low byte). */
static u64 szp(u64 r, u32 size)
{
    u64 f = 0;
    u8 low = (u8)r;
    r &= mask_of(size);
    if (!r)
        f |= FL_ZF;
    if (r & sign_bit(size))
        f |= FL_SF;
    low ^= low >> 4;
    low ^= low >> 2;
    low ^= low >> 1;
    if (!(low & 1))
        f |= FL_PF;
    return f;
}

/* a OP b with the status flags (Vol. 1 Appendix A / each instruction's "Flags Affected"). */
static u64 alu(u32 kind, u64 a, u64 b, u32 size, u64 *flags)
{
    u64 m = mask_of(size), r, f;
    u64 c = *flags & FL_CF;
    a &= m;
    b &= m;
    switch (kind) {
    case MMIO_ADD:
    case MMIO_ADC:
    case MMIO_SUB:
    case MMIO_SBB:
    case MMIO_CMP: {
        /* One adder for both: a - b - c = a + ~b + (1 - c), and its carry out is the inverse of the
         * borrow (CF of SUB SBB CMP). AF from the true b: bit 3's carry or borrow is (a ^ b ^ r) & AF
         * either way; OF when both addends' signs differ from the result's. */
        bool sub = kind == MMIO_SUB || kind == MMIO_SBB || kind == MMIO_CMP;
        u64 addend = sub ? ~b & m : b;
        u64 carry = (kind == MMIO_ADC || kind == MMIO_SBB) ? c : 0;
        carry = sub ? !carry : carry;
        r = (a + addend + carry) & m;
        f = szp(r, size) | ((a ^ b ^ r) & FL_AF);
        if ((r < a || (carry && r == a)) != sub)
            f |= FL_CF;
        if ((a ^ r) & (addend ^ r) & sign_bit(size))
            f |= FL_OF;
        break;
    }
    default:    /* OR AND XOR: CF = OF = 0; AF undefined, left 0 */
        r = kind == MMIO_OR ? a | b : kind == MMIO_AND ? a & b : a ^ b;
        f = szp(r, size);
        break;
    }
    *flags = (*flags & ~FL_ARITH) | f;
    return r;
}

struct emu {
    struct vcpu *v;
    struct guest_paging pg;
    const struct mmio_dev *dev;
    struct mmio_result *res;
    u32 code_bits;
};

static u64 get_reg(struct vcpu *v, u32 reg, bool high8, u32 size)
{
    u64 val = vcpu_gpr(v, reg);
    return high8 ? (val >> 8) & 0xff : val & mask_of(size);
}

/* Vol. 1 3.4.1.1: 8/16-bit writes keep the rest, 32-bit writes zero bits 63:32. */
static void set_reg(struct vcpu *v, u32 reg, bool high8, u32 size, u64 value)
{
    u64 old = vcpu_gpr(v, reg);
    if (high8)
        value = (old & ~0xff00ull) | (value & 0xff) << 8;
    else if (size < 4)
        value = (old & ~mask_of(size)) | (value & mask_of(size));
    else
        value &= mask_of(size);
    vcpu_set_gpr(v, reg, value);
}

/* An address-sized register update (rSI rDI rCX of the string instructions). */
static void set_addr_reg(struct vcpu *v, u32 reg, u32 addr_bits, u64 value)
{
    set_reg(v, reg, false, addr_bits / 8, value);
}

static enum mmio_status fault(struct emu *e, u8 vector, bool has_error, u32 error, u64 cr2)
{
    e->res->fault = (struct mmio_fault){ .vector = vector, .has_error = has_error, .error = error, .cr2 = cr2 };
    return MMIO_EMUL_FAULT;
}

/*
 * The linear address of seg:ea. 64-bit mode: only FS and GS have a base, and the address must be
 * canonical (else #GP(0), #SS(0) for SS: Vol. 3A 6.15). Elsewhere: base + ea, wrapped to 32 bits.
 * Segment limits and access rights are not checked: the CPU checked them before the access faulted.
 */
static enum mmio_status linear(struct emu *e, u32 seg, u64 ea, u32 size, u64 *la)
{
    if (e->code_bits == 64) {
        u64 base = seg == VCPU_FS || seg == VCPU_GS ? e->v->ops->seg_base(e->v, (enum vcpu_seg)seg) : 0;
        u64 first = base + ea, last = first + size - 1;
        if ((u64)((i64)(first << 16) >> 16) != first || (u64)((i64)(last << 16) >> 16) != last)
            return fault(e, seg == VCPU_SS ? VEC_SS : VEC_GP, true, 0, 0);
        *la = first;
    } else {
        *la = (u32)(e->v->ops->seg_base(e->v, (enum vcpu_seg)seg) + ea);
    }
    return MMIO_EMUL_DONE;
}

/* Where a memory operand lives: in the device (offset), or guest RAM (gpa per page), checked up front. */
struct place {
    bool dev;
    u32 offset;
    u64 la;
    u32 size;
};

static enum mmio_status locate(struct emu *e, u64 la, u32 size, bool write, struct place *pl)
{
    u64 gpa, gpa2, last = la + size - 1;
    pl->la = la;
    pl->size = size;
    pl->dev = false;
    /* #PF for a page the guest's tables do not map (error code: not present, W, U for CPL 3: Vol. 3A 4.7) */
    bool first = guest_translate(&e->pg, la, &gpa);
    bool split = (la ^ last) & ~(PAGE_SIZE - 1);
    if (!first || (split && !guest_translate(&e->pg, last & ~(PAGE_SIZE - 1), &gpa2))) {
        u32 err = (write ? PF_ERR_W : 0) | (e->v->ops->cpl(e->v) == 3 ? PF_ERR_U : 0);
        return fault(e, VEC_PF, true, err, first ? last & ~(PAGE_SIZE - 1) : la);
    }
    if (gpa - e->dev->base < e->dev->length) {
        /* a device access stays inside the device and inside one page */
        if (split || gpa - e->dev->base + size > e->dev->length)
            return MMIO_EMUL_UNSUPPORTED;
        pl->dev = true;
        pl->offset = (u32)(gpa - e->dev->base);
    }
    return MMIO_EMUL_DONE;
}

/* RAM access split at page boundaries (each page translated separately). */
static bool ram_access(struct emu *e, u64 la, void *buf, u32 len, bool write)
{
    u8 *p = buf;
    while (len) {
        u64 gpa;
        u32 chunk = (u32)(PAGE_SIZE - (la & (PAGE_SIZE - 1)));
        if (chunk > len)
            chunk = len;
        if (!guest_translate(&e->pg, la, &gpa) || gpa - e->dev->base < e->dev->length)
            return false;
        if (!(write ? guest_write_phys(gpa, p, chunk) : guest_read_phys(gpa, p, chunk)))
            return false;
        p += chunk;
        la += chunk;
        len -= chunk;
    }
    return true;
}

static bool rd(struct emu *e, const struct place *pl, u64 *value)
{
    *value = 0;
    if (!pl->dev)
        return ram_access(e, pl->la, value, pl->size, false);   /* little endian, like the guest */
    if (!e->dev->read(e->dev->ctx, pl->offset, pl->size, value))
        return false;
    *value &= mask_of(pl->size);
    e->res->dev_offset = pl->offset;
    e->res->dev_value = *value;
    e->res->dev_write = false;
    return true;
}

static bool wr(struct emu *e, const struct place *pl, u64 value)
{
    value &= mask_of(pl->size);
    if (!pl->dev)
        return ram_access(e, pl->la, &value, pl->size, true);
    if (!e->dev->write(e->dev->ctx, pl->offset, pl->size, value))
        return false;
    e->res->dev_offset = pl->offset;
    e->res->dev_value = value;
    e->res->dev_write = true;
    return true;
}

/* Fetch up to 15 bytes at CS:RIP, fewer if the next page is not mapped or not RAM. */
static u32 fetch(struct emu *e, u8 *out)
{
    struct vcpu *v = e->v;
    u64 rip = v->ops->rip(v);
    u64 la = e->code_bits == 64 ? rip : (u32)(v->ops->seg_base(v, VCPU_CS) + rip);
    u32 got = 0;
    while (got < MMIO_INSN_MAX) {
        u64 gpa;
        u32 chunk = (u32)(PAGE_SIZE - (la & (PAGE_SIZE - 1)));
        if (chunk > MMIO_INSN_MAX - got)
            chunk = MMIO_INSN_MAX - got;
        if (!guest_translate(&e->pg, la, &gpa) || !guest_read_phys(gpa, out + got, chunk))
            break;
        got += chunk;
        la = e->code_bits == 64 ? la + chunk : (u32)(la + chunk);
    }
    return got;
}

/* BT*: the bit, and for a register bit offset the operand it falls in (Vol. 2A BT: "bit base"). */
static void bit_target(const struct mmio_insn *in, struct vcpu *v, u64 *ea_adjust, u32 *bit)
{
    u32 bits = 8u * in->size;
    if (in->has_imm) {
        *ea_adjust = 0;
        *bit = (u32)in->imm & (bits - 1);
        return;
    }
    u64 off = vcpu_gpr(v, in->reg) & mask_of(in->size);
    i64 soff = (i64)(off << (64 - bits)) >> (64 - bits);      /* signed, operand-sized */
    i64 element = soff >= 0 ? soff / (i64)bits : -((-soff + (i64)bits - 1) / (i64)bits);
    *ea_adjust = (u64)(element * (i64)in->size);
    *bit = (u32)(soff - element * (i64)bits);
}

static enum mmio_status string_op(struct emu *e, const struct mmio_insn *in)
{
    struct vcpu *v = e->v;
    u32 size = in->size, abytes = in->addr_bits / 8;
    u64 amask = mask_of(abytes);
    u64 rflags = v->ops->rflags(v);
    u64 step = rflags & FL_DF ? (u64)0 - size : size;      /* DF: down (Vol. 1 3.4.3.2) */
    u64 count = vcpu_gpr(v, 1) & amask;
    if (in->rep && !count) {
        v->ops->advance(v, in->len);
        return MMIO_EMUL_DONE;
    }
    /* REP: iterations until rCX is 0 while the device stays one of the operands; an interrupted
     * string instruction keeps its RIP and resumes with the updated registers (Vol. 2B REP). */
    for (u32 it = 0; it < 4096; it++) {
        u64 si = vcpu_gpr(v, 6) & amask, di = vcpu_gpr(v, 7) & amask;
        struct place src = { 0 }, dst = { 0 };
        u64 la, value;
        enum mmio_status st;
        bool reads = in->op != MMIO_STOS, writes = in->op != MMIO_LODS;
        if (reads && ((st = linear(e, in->seg, si, size, &la)) || (st = locate(e, la, size, false, &src))))
            return it ? MMIO_EMUL_DONE : st;
        if (writes && ((st = linear(e, VCPU_ES, di, size, &la)) || (st = locate(e, la, size, true, &dst))))
            return it ? MMIO_EMUL_DONE : st;
        if (!src.dev && !dst.dev)
            return it ? MMIO_EMUL_DONE : MMIO_EMUL_UNSUPPORTED;
        if (reads) {
            if (!rd(e, &src, &value))
                return it ? MMIO_EMUL_DONE : MMIO_EMUL_UNSUPPORTED;
        } else {
            value = get_reg(v, 0, false, size);
        }
        if (writes) {
            if (!wr(e, &dst, value))
                return it ? MMIO_EMUL_DONE : MMIO_EMUL_UNSUPPORTED;
        } else {
            set_reg(v, 0, false, size, value);
        }
        if (reads)
            set_addr_reg(v, 6, in->addr_bits, si + step);
        if (writes)
            set_addr_reg(v, 7, in->addr_bits, di + step);
        e->res->iterations++;
        if (!in->rep)
            break;
        set_addr_reg(v, 1, in->addr_bits, --count);
        if (!count)
            break;
    }
    if (!in->rep || !count)
        v->ops->advance(v, in->len);
    return MMIO_EMUL_DONE;
}

static enum mmio_status perform(struct emu *e, const struct mmio_insn *in)
{
    struct vcpu *v = e->v;
    u32 size = in->size;
    u64 rflags = v->ops->rflags(v), old_flags = rflags;
    u64 ea = in->ea, la, mem = 0;
    u32 bit = 0;
    struct place pl;
    enum mmio_status st;
    bool writes = in->op == MMIO_MOV_STORE || in->op == MMIO_XCHG || in->op == MMIO_XADD ||
                  in->op == MMIO_CMPXCHG || in->op == MMIO_UNARY ||
                  (in->op == MMIO_ALU_STORE && in->alu != MMIO_CMP) || (in->op == MMIO_BT && in->alu != MMIO_BIT_BT);
    u32 access = in->op == MMIO_MOVZX || in->op == MMIO_MOVSX ? in->src_size : size;

    if (in->op == MMIO_BT) {
        u64 adjust;
        bit_target(in, v, &adjust, &bit);
        ea = (ea + adjust) & mask_of(in->addr_bits / 8);
    }
    if ((st = linear(e, in->seg, ea, access, &la)) || (st = locate(e, la, access, writes, &pl)))
        return st;
    if (!pl.dev)
        return MMIO_EMUL_UNSUPPORTED;   /* the operand is not the trapped page (the tables changed under us?) */
    if (in->op != MMIO_MOV_STORE && !rd(e, &pl, &mem))
        return MMIO_EMUL_UNSUPPORTED;

    u64 src = in->has_imm ? in->imm : in->has_reg ? get_reg(v, in->reg, in->high8, size) : 0;
    u64 result = 0;
    bool store = writes, reg_write = false;
    u64 reg_value = 0;
    switch (in->op) {
    case MMIO_MOV_STORE:
        result = src;
        break;
    case MMIO_MOV_LOAD:
        reg_write = true;
        reg_value = mem;
        break;
    case MMIO_MOVZX:
    case MMIO_MOVSX:
        reg_write = true;
        reg_value = in->op == MMIO_MOVZX || !(mem & sign_bit(access)) ? mem : mem | ~mask_of(access);
        break;
    case MMIO_ALU_STORE:
        result = alu(in->alu, mem, src, size, &rflags);
        break;
    case MMIO_ALU_LOAD:
        reg_value = alu(in->alu, src, mem, size, &rflags);
        reg_write = in->alu != MMIO_CMP;
        break;
    case MMIO_TEST:
        alu(MMIO_AND, mem, src, size, &rflags);
        break;
    case MMIO_XCHG:
        result = src;
        reg_write = true;
        reg_value = mem;
        break;
    case MMIO_XADD:
        result = alu(MMIO_ADD, mem, src, size, &rflags);
        reg_write = true;
        reg_value = mem;
        break;
    case MMIO_CMPXCHG: {
        /* compare the accumulator with the destination: equal -> ZF, dest = src; else the accumulator
         * gets the destination. The write-back of the unchanged value on failure is not done: a
         * device register write can have side effects (Vol. 2A CMPXCHG) */
        u64 acc = get_reg(v, 0, false, size);
        alu(MMIO_CMP, acc, mem, size, &rflags);
        if (rflags & FL_ZF) {
            result = src;
        } else {
            store = false;
            set_reg(v, 0, false, size, mem);
        }
        break;
    }
    case MMIO_BT:
        rflags = (rflags & ~FL_CF) | ((mem >> bit) & 1);     /* CF = the bit; other flags unchanged */
        result = in->alu == MMIO_BIT_BTS ? mem | 1ull << bit
               : in->alu == MMIO_BIT_BTR ? mem & ~(1ull << bit)
               : mem ^ 1ull << bit;
        break;
    case MMIO_UNARY:
        if (in->alu == MMIO_UN_NOT) {
            result = ~mem;                                  /* no flags */
        } else if (in->alu == MMIO_UN_NEG) {
            result = alu(MMIO_SUB, 0, mem, size, &rflags);  /* CF = (source != 0), the rest as SUB */
        } else {
            u64 cf = rflags & FL_CF;                        /* INC / DEC leave CF alone */
            result = alu(in->alu == MMIO_UN_INC ? MMIO_ADD : MMIO_SUB, mem, 1, size, &rflags);
            rflags = (rflags & ~FL_CF) | cf;
        }
        break;
    default:
        return MMIO_EMUL_UNDECODABLE;
    }
    if (store && !wr(e, &pl, result))
        return MMIO_EMUL_UNSUPPORTED;
    if (reg_write)
        set_reg(v, in->op == MMIO_XCHG || in->op == MMIO_XADD || in->has_reg ? in->reg : 0, in->high8, size,
                reg_value);
    if (rflags != old_flags)
        v->ops->set_rflags(v, rflags);
    v->ops->advance(v, in->len);
    return MMIO_EMUL_DONE;
}

u64 mmio_reg32_read(u32 offset, u32 size, u32 (*read32)(void *ctx, u32 reg), void *ctx)
{
    u64 v = 0;
    u32 slot = ~0u, reg = 0;
    for (u32 i = 0; i < size; i++) {
        u32 at = offset + i;
        if ((at & 15) >= 4)
            continue;           /* reserved bytes of the slot */
        if ((at & ~15u) != slot) {
            slot = at & ~15u;
            reg = read32(ctx, slot);
        }
        v |= (u64)((reg >> (8 * (at & 3))) & 0xff) << (8 * i);
    }
    return v;
}

bool mmio_reg32_write_reaches(u32 offset, u32 size)
{
    return (offset & 15) == 0 && (size == 4 || size == 8);
}

enum mmio_status mmio_emulate(struct vcpu *v, u64 gpa, const struct mmio_dev *dev, struct mmio_result *res)
{
    struct emu e = { .v = v, .dev = dev, .res = res, .code_bits = v->ops->code_bits(v) };
    memset(res, 0, sizeof(*res));
    if (gpa - dev->base >= dev->length)
        return MMIO_EMUL_UNSUPPORTED;
    v->ops->paging(v, &e.pg);
    res->fetched = fetch(&e, res->bytes);
    if (!mmio_decode(res->bytes, res->fetched, e.code_bits, v, &res->insn))
        return MMIO_EMUL_UNDECODABLE;
    const struct mmio_insn *in = &res->insn;
    if (in->op == MMIO_MOVS || in->op == MMIO_STOS || in->op == MMIO_LODS)
        return string_op(&e, in);
    return perform(&e, in);
}
