/* The xAPIC write and fetch policies: see apic_policy.h. Register map: SDM Vol. 3A Table 11-1. */
#include <hv/apic_policy.h>

enum reg_kind { REG_RESERVED, REG_RO, REG_RW, REG_LVT, REG_ICR_LO };

#define M(mode) (1u << APIC_MODE_##mode)

struct reg_rule {
    u16 offset;
    u8 kind;            /* enum reg_kind */
    u8 modes;           /* REG_LVT: the delivery modes this entry may have (1 << mode) */
    u32 writable;       /* bits the guest's value keeps; the rest are cleared */
    u32 ones;           /* bits always set (reserved, read as ones) */
};

/* Offsets not listed are reserved (0x00, 0x10, 0x40-0x70, 0x290-0x2e0, 0x3a0-0x3d0, 0x3f0, 0x400 on). */
static const struct reg_rule rules[] = {
    { 0x020, REG_RO, 0, 0, 0 },                 /* APIC ID: read-only here (apic_policy.h) */
    { 0x030, REG_RO, 0, 0, 0 },                 /* version */
    { 0x080, REG_RW, 0, 0x000000ff, 0 },        /* TPR */
    { 0x090, REG_RO, 0, 0, 0 },                 /* APR */
    { 0x0a0, REG_RO, 0, 0, 0 },                 /* PPR */
    { 0x0b0, REG_RW, 0, 0, 0 },                 /* EOI: software writes 0 (11.8.5) */
    { 0x0c0, REG_RO, 0, 0, 0 },                 /* RRD */
    { 0x0d0, REG_RW, 0, 0xff000000, 0 },        /* LDR: logical APIC ID 31:24 (11.6.2.2) */
    { 0x0e0, REG_RW, 0, 0xf0000000, 0x0fffffff },   /* DFR: model 31:28, 27:0 reserved as ones */
    { 0x0f0, REG_RW, 0, 0x000013ff, 0 },        /* SVR: vector, enable, focus, EOI-broadcast suppression (11.9) */
    /* 0x100-0x270: ISR, TMR, IRR (read-only), below */
    { 0x280, REG_RW, 0, 0, 0 },                 /* ESR: a write (of 0) latches the errors (11.5.3) */
    { 0x2f0, REG_LVT, M(FIXED) | M(NMI), 0x000107ff, 0 },                   /* LVT CMCI */
    { 0x300, REG_ICR_LO, 0, 0x000ccfff, 0 },    /* ICR low: vector, mode, dest mode, level, trigger, shorthand */
    { 0x310, REG_RW, 0, 0xff000000, 0 },        /* ICR high: destination 31:24 */
    { 0x320, REG_LVT, M(FIXED), 0x000707ff, 0 },                            /* LVT timer: mode 18:17 */
    { 0x330, REG_LVT, M(FIXED) | M(NMI), 0x000107ff, 0 },                   /* LVT thermal */
    { 0x340, REG_LVT, M(FIXED) | M(NMI), 0x000107ff, 0 },                   /* LVT performance counters */
    { 0x350, REG_LVT, M(FIXED) | M(NMI) | M(EXTINT), 0x0001a7ff, 0 },       /* LVT LINT0: polarity, trigger */
    { 0x360, REG_LVT, M(FIXED) | M(NMI) | M(EXTINT), 0x000127ff, 0 },       /* LVT LINT1: edge only */
    { 0x370, REG_LVT, M(FIXED), 0x000107ff, 0 },                            /* LVT error */
    { 0x380, REG_RW, 0, 0xffffffff, 0 },        /* timer initial count */
    { 0x390, REG_RO, 0, 0, 0 },                 /* timer current count */
    { 0x3e0, REG_RW, 0, 0x0000000b, 0 },        /* timer divide configuration: bits 0, 1, 3 */
};

static const struct reg_rule *rule_of(u32 offset)
{
    static const struct reg_rule read_only = { 0, REG_RO, 0, 0, 0 };
    if (offset >= 0x100 && offset < 0x280)
        return &read_only;
    for (u32 i = 0; i < sizeof(rules) / sizeof(rules[0]); i++)
        if (rules[i].offset == offset)
            return &rules[i];
    return NULL;
}

static void drop(struct apic_write_verdict *out, bool security, const char *why)
{
    out->action = APIC_WRITE_DROP;
    out->security = security;
    out->why = why;
}

/* 11.5.1; the timer's mode field 18:17: 00 one-shot, 01 periodic, 10 TSC-deadline (11.5.4.1), 11 reserved. */
static void check_lvt(const struct reg_rule *r, u32 value, bool tsc_deadline, struct apic_write_verdict *out)
{
    u32 mode = APIC_LVT_MODE(value);
    const char *why = NULL;
    if (!(r->modes & (1u << mode)))
        why = "LVT delivery mode not allowed for this entry (SDM 11.5.1): written masked, Fixed";
    else if (r->offset == 0x320 && (((value >> 17) & 3) == 3 || (((value >> 17) & 3) == 2 && !tsc_deadline)))
        why = "reserved LVT timer mode (SDM 11.5.4.1): written masked, one-shot";
    else if (mode == APIC_MODE_FIXED && !(value & APIC_LVT_MASKED) && (value & 0xff) < 16)
        why = "LVT vector 0-15 is illegal (SDM 11.5.3): written masked";
    if (!why)
        return;
    out->value = (out->value & ~(0x700u | (r->offset == 0x320 ? 3u << 17 : 0))) | APIC_LVT_MASKED;
    out->security = true;
    out->why = why;
}

void apic_policy_write(u32 offset, u32 size, u32 value, bool tsc_deadline, struct apic_write_verdict *out)
{
    *out = (struct apic_write_verdict){ .action = APIC_WRITE_PASS, .value = value };
    if (size != 4 || (offset & 15)) {
        drop(out, false, "not an aligned 32-bit store (SDM 11.4.1: model specific): dropped");
        return;
    }
    const struct reg_rule *r = rule_of(offset);
    if (!r) {
        drop(out, false, "reserved register (SDM Table 11-1): dropped");
        return;
    }
    if (r->kind == REG_RO) {
        drop(out, false, "read-only register: dropped, as the hardware ignores it");
        return;
    }
    out->value = (value & r->writable) | r->ones;
    if (r->kind == REG_LVT) {
        check_lvt(r, value, tsc_deadline, out);
    } else if (r->kind == REG_ICR_LO) {
        u32 mode = APIC_LVT_MODE(value);
        if (!((M(FIXED) | M(LOWEST) | M(NMI) | M(INIT) | M(STARTUP)) & (1u << mode)))
            drop(out, true, "ICR delivery mode SMI or reserved (SDM 11.6.1): no IPI");
        else if ((mode == APIC_MODE_FIXED || mode == APIC_MODE_LOWEST) && (value & 0xff) < 16)
            drop(out, true, "ICR vector 0-15 is illegal (SDM 11.5.3, send illegal vector): no IPI");
    }
}

/* The instructions a step cannot hold to one instruction (apic_policy.h). */
const char *apic_policy_fetch(const u8 *b, u32 n, bool long_mode)
{
    u32 i = 0;
    while (i < n && (b[i] == 0x26 || b[i] == 0x2e || b[i] == 0x36 || b[i] == 0x3e || (b[i] >= 0x64 && b[i] <= 0x67) ||
                     b[i] == 0xf0 || b[i] == 0xf2 || b[i] == 0xf3 || (long_mode && (b[i] & 0xf0) == 0x40)))
        i++;
    u8 op = i < n ? b[i] : 0, next = i + 1 < n ? b[i + 1] : 0, third = i + 2 < n ? b[i + 2] : 0;
    if (op == 0x17 || (op == 0x8e && ((next >> 3) & 7) == 2))
        return "MOV SS / POP SS: the single-step trap waits for the next instruction (SDM Vol. 3A 6.8.3)";
    if (op == 0xcc || op == 0xcd || op == 0xce || op == 0xf1)
        return "INT3 / INT n / INTO / INT1: software interrupts (no exit for INT n on VT-x; its handler runs "
               "with TF clear, SDM Vol. 3A 6.12.1.2)";
    if (op == 0x0f && (next == 0x05 || next == 0x34))
        return "SYSCALL / SYSENTER: their flag masks can clear TF";
    /*
     * A CPU that waits inside a step holds the page redirected, and the lock every other CPU's
     * undecodable APIC store needs, for as long as it waits: with interrupts off, for ever (Bochs, chaos
     * seed 6, went silent). The step never ends, so nothing would ever say why.
     */
    if (op == 0xf4 || (op == 0x0f && next == 0x01 && (third == 0xc9 || third == 0xfb)))
        return "HLT / MWAIT / MWAITX: the CPU would wait inside the step, holding it";
    return NULL;
}
