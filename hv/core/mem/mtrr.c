/*
 * MTRRs (SDM Vol. 3A 13.11): mtrr_read() is the only code here that touches an MSR; the lookup below
 * works on the raw copy, so it runs unchanged in the host-side unit tests.
 *
 * The lookup evaluates the type at one address together with the next address where it may change
 * (the end of a fixed sub-range, or a variable range's next start/end). A range query walks those
 * boundaries and stops at the first change, so its cost grows with the MTRR boundaries inside the
 * range, never with its size.
 */
#include <hv/console.h>
#include <hv/mtrr.h>
#include <hv/x86.h>

#define CPUID_1_EDX_MTRR (1u << 12)
#define NO_ADDR          (~0ull)    /* "no further boundary" */

void mtrr_read(struct mtrr_state *st)
{
    u32 a, b, c, d;
    memset(st, 0, sizeof(*st));
    cpuid(1, 0, &a, &b, &c, &d);
    if (!(d & CPUID_1_EDX_MTRR))
        return;                         /* all zero: disabled, like DEF_TYPE.E=0 */
    /* Without CPUID 80000008H MAXPHYADDR is 36 (SDM Vol. 3A 4.1.4). */
    st->phys_bits = 36;
    cpuid(0x80000000, 0, &a, &b, &c, &d);
    if (a >= 0x80000008) {
        cpuid(0x80000008, 0, &a, &b, &c, &d);
        st->phys_bits = (u8)a;
    }
    st->cap = rdmsr(MSR_MTRRCAP);
    st->def_type = rdmsr(MSR_MTRR_DEF_TYPE);
    if (st->cap & MTRRCAP_FIX) {
        st->fixed[0] = rdmsr(MSR_MTRR_FIX64K);
        st->fixed[1] = rdmsr(MSR_MTRR_FIX16K_80);
        st->fixed[2] = rdmsr(MSR_MTRR_FIX16K_A0);
        for (u32 i = 0; i < 8; i++)
            st->fixed[3 + i] = rdmsr(MSR_MTRR_FIX4K(i));
    }
    st->var_count = MTRRCAP_VCNT(st->cap);
    if (st->var_count > MTRR_MAX_VAR) {
        printk("mtrr: %u variable ranges, only the first %u are used\n", st->var_count, MTRR_MAX_VAR);
        st->var_count = MTRR_MAX_VAR;
    }
    for (u32 i = 0; i < st->var_count; i++) {
        st->var[i].base = rdmsr(MSR_MTRR_PHYSBASE(i));
        st->var[i].mask = rdmsr(MSR_MTRR_PHYSMASK(i));
    }
}

bool mtrr_enabled(const struct mtrr_state *st)
{
    return st->def_type & MTRR_DEF_TYPE_E;
}

/*
 * Fixed ranges (SDM Vol. 3A 13.11.2.2): 8 x 64 KiB from 0, 16 x 16 KiB from 0x80000, 64 x 4 KiB from
 * 0xC0000; byte n of each MSR types its n-th sub-range.
 */
static u8 fixed_type(const struct mtrr_state *st, u64 x, u64 *next)
{
    u32 msr, shift;
    if (x < 0x80000) {
        msr = 0;
        shift = 16;
    } else if (x < 0xc0000) {
        msr = 1 + (u32)((x - 0x80000) >> 17);
        shift = 14;
    } else {
        msr = 3 + (u32)((x - 0xc0000) >> 15);
        shift = 12;
    }
    *next = (x >> shift << shift) + (1ull << shift);
    return (u8)(st->fixed[msr] >> (8 * ((x >> shift) & 7)));
}

/* Smallest j >= lo with (j & m) == b (b within m), or NO_ADDR. */
static u64 next_match(u64 lo, u64 m, u64 b)
{
    u64 wrong = (lo ^ b) & m;
    if (!wrong)
        return lo;
    u32 i = 63 - (u32)__builtin_clzll(wrong);     /* highest constrained bit lo gets wrong */
    u64 below_i = (1ull << i) - 1;
    if (b >> i & 1)                               /* lo has 0, 1 required: set it, complete minimally */
        return (lo & ~below_i) | (1ull << i) | (b & below_i);
    /* lo has 1, 0 required: carry into the lowest free bit above i that lo has clear. */
    u64 carry = ~m & ~lo & ~(below_i | (1ull << i));
    if (!carry)
        return NO_ADDR;
    u32 p = (u32)__builtin_ctzll(carry);
    u64 below_p = (1ull << p) - 1;
    return (lo & ~below_p) | (1ull << p) | (b & below_p);
}

/*
 * Variable range n (SDM Vol. 3A 13.11.2.3): x matches when (x & mask) == (base & mask). The mask is
 * extended with every bit at or above MAXPHYADDR (those must be 0 in x), so it is never 0. Its lowest
 * set bit k splits memory into 2^k blocks that match or not as a whole; a non-contiguous mask (legal,
 * if unusual) simply matches several blocks. Adjacent blocks never both match, since bit k is in
 * the mask. Sets *next to the address where x's block stops matching or the next one starts.
 */
static bool var_match(const struct mtrr_state *st, u32 n, u64 x, u64 *next)
{
    u64 addr_bits = ((1ull << st->phys_bits) - 1) & ~0xfffull;
    u64 mask = (st->var[n].mask & addr_bits) | ~((1ull << st->phys_bits) - 1);
    u32 k = (u32)__builtin_ctzll(mask);
    /* In block numbers the top k bits stand for addresses past 2^64: constrained (to 0) as well. */
    u64 m = mask >> k | ~0ull << (64 - k), b = (st->var[n].base & mask) >> k, j = x >> k;
    if ((j & m) == b) {
        *next = (j + 1) << k;
        return true;
    }
    u64 nj = next_match(j + 1, m, b);
    *next = nj == NO_ADDR ? NO_ADDR : nj << k;
    return false;
}

/* Precedence for overlapping variable ranges (SDM Vol. 3A 13.11.4.1). */
static u8 combine(u8 a, u8 b)
{
    if (a == b)
        return a;
    if ((a == MEMTYPE_WT && b == MEMTYPE_WB) || (a == MEMTYPE_WB && b == MEMTYPE_WT))
        return MEMTYPE_WT;
    /* UC with anything is UC; any other mix is undefined by the SDM: take the safe UC. */
    return MEMTYPE_UC;
}

static u8 type_at(const struct mtrr_state *st, u64 x, u64 *next)
{
    *next = NO_ADDR;
    if (!mtrr_enabled(st))
        return MEMTYPE_UC;
    /* Fixed ranges, when enabled, override the variable ones below 1 MiB. */
    if (x < MiB(1) && (st->def_type & MTRR_DEF_TYPE_FE) && (st->cap & MTRRCAP_FIX))
        return fixed_type(st, x, next);
    bool matched = false;
    u8 type = (u8)st->def_type;
    for (u32 n = 0; n < st->var_count; n++) {
        if (!(st->var[n].mask & MTRR_PHYSMASK_V))
            continue;
        u64 boundary;
        if (var_match(st, n, x, &boundary)) {
            u8 t = (u8)st->var[n].base;
            type = matched ? combine(type, t) : t;
            matched = true;
        }
        if (boundary < *next)
            *next = boundary;
    }
    return type;
}

u8 mtrr_type_of_range(const struct mtrr_state *st, u64 base, u64 len, bool *uniform)
{
    u64 end = base + len, next;
    u8 type = type_at(st, base, &next);
    *uniform = true;
    while (next < end) {
        if (type_at(st, next, &next) != type) {
            *uniform = false;
            break;
        }
    }
    return type;
}
