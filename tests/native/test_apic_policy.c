/*
 * Host-side checks of the xAPIC write policy (hv/core/guest/apic_policy.c) against SDM Vol. 3A Table 11-1
 * and 11.5.1: every offset of the page, every LVT delivery mode, the ICR's modes and vectors, every
 * size and alignment. Prints "N checks passed" (tests/unit/test_native_checks.py reads it).
 */
#include <stdio.h>

#include <hv/apic_policy.h>

#include "check.h"

static struct apic_write_verdict verdict(u32 offset, u32 size, u32 value, bool tsc_deadline)
{
    struct apic_write_verdict w;
    apic_policy_write(offset, size, value, tsc_deadline, &w);
    return w;
}

static bool passes(u32 offset, u32 value)
{
    return verdict(offset, 4, value, true).action == APIC_WRITE_PASS;
}

/* Table 11-1: the registers software may write; every other 16-byte slot is read-only or reserved. */
static const u16 writable[] = { 0x080, 0x0b0, 0x0d0, 0x0e0, 0x0f0, 0x280, 0x2f0, 0x300, 0x310,
                                0x320, 0x330, 0x340, 0x350, 0x360, 0x370, 0x380, 0x3e0 };

static bool is_writable(u32 off)
{
    for (u32 i = 0; i < sizeof(writable) / sizeof(writable[0]); i++)
        if (writable[i] == off)
            return true;
    return false;
}

static void test_register_map(void)
{
    for (u32 off = 0; off < 0x1000; off += 16) {
        struct apic_write_verdict w = verdict(off, 4, 0x12045, true);
        if (is_writable(off)) {
            CHECK(w.action == APIC_WRITE_PASS, "offset 0x%x is writable", off);
        } else {
            CHECK(w.action == APIC_WRITE_DROP && !w.security && w.why, "offset 0x%x is dropped", off);
        }
    }
    /* The ones issue 13 names: offset 0 (ended QEMU), the APIC ID (read-only here), ISR/TMR/IRR, version. */
    CHECK(!passes(0x000, 0), "a store at offset 0 never reaches the APIC");
    CHECK(!passes(0x020, 0x01000000), "the APIC ID is read-only");
    CHECK(!passes(0x030, 0), "version");
    CHECK(!passes(0x100, 0) && !passes(0x170, 0) && !passes(0x180, 0) && !passes(0x270, 0), "ISR TMR IRR");
    CHECK(!passes(0x390, 0), "current count");
    CHECK(!passes(0x400, 0) && !passes(0xff0, 0), "beyond Table 11-1 (AMD extended space included)");
}

static void test_sizes_and_alignment(void)
{
    for (u32 off = 0x80; off < 0x90; off++)
        for (u32 size = 1; size <= 8; size <<= 1) {
            struct apic_write_verdict w = verdict(off, size, 0x20, true);
            bool ok = off == 0x80 && size == 4;
            CHECK((w.action == APIC_WRITE_PASS) == ok, "TPR store of %u bytes at 0x%x", size, off);
        }
}

static void test_value_masks(void)
{
    CHECK(verdict(0x080, 4, 0xffffffff, true).value == 0xff, "TPR bits 7:0");
    CHECK(verdict(0x0b0, 4, 0xdeadbeef, true).value == 0, "EOI writes 0");
    CHECK(verdict(0x0d0, 4, 0xffffffff, true).value == 0xff000000, "LDR 31:24");
    CHECK(verdict(0x0e0, 4, 0, true).value == 0x0fffffff, "DFR cluster model, 27:0 as ones");
    CHECK(verdict(0x0f0, 4, 0xffffffff, true).value == 0x13ff, "SVR");
    CHECK(verdict(0x310, 4, 0xffffffff, true).value == 0xff000000, "ICR high destination");
    CHECK(verdict(0x3e0, 4, 0xffffffff, true).value == 0xb, "divide configuration");
    CHECK(verdict(0x380, 4, 0xffffffff, true).value == 0xffffffff, "initial count");
}

/* 11.5.1: the delivery modes each LVT entry may have under this policy. */
static void test_lvt_modes(void)
{
    static const struct { u16 off; u8 allowed; } lvts[] = {
        { 0x2f0, 1u << 0 | 1u << 4 }, { 0x320, 1u << 0 }, { 0x330, 1u << 0 | 1u << 4 },
        { 0x340, 1u << 0 | 1u << 4 }, { 0x350, 1u << 0 | 1u << 4 | 1u << 7 },
        { 0x360, 1u << 0 | 1u << 4 | 1u << 7 }, { 0x370, 1u << 0 },
    };
    for (u32 i = 0; i < sizeof(lvts) / sizeof(lvts[0]); i++)
        for (u32 mode = 0; mode < 8; mode++)
            for (u32 masked = 0; masked < 2; masked++) {
                u32 value = 0x40 | mode << 8 | masked << 16;
                struct apic_write_verdict w = verdict(lvts[i].off, 4, value, true);
                bool legal = lvts[i].allowed >> mode & 1;
                CHECK(w.action == APIC_WRITE_PASS, "LVT 0x%x is written", lvts[i].off);
                CHECK(w.security == !legal, "LVT 0x%x mode %u masked %u: security %d", lvts[i].off, mode, masked,
                      w.security);
                if (legal) {
                    CHECK(w.value == value, "LVT 0x%x mode %u kept: 0x%x", lvts[i].off, mode, w.value);
                } else {
                    /* never SMI / INIT / reserved / misplaced ExtINT on the real APIC: masked, Fixed */
                    CHECK(w.value == (0x40 | APIC_LVT_MASKED), "LVT 0x%x mode %u -> 0x%x", lvts[i].off, mode, w.value);
                }
            }
}

static void test_lvt_vectors_and_timer(void)
{
    for (u32 vec = 0; vec < 256; vec++) {
        struct apic_write_verdict w = verdict(0x320, 4, vec, true);
        CHECK(w.security == (vec < 16), "timer vector %u unmasked", vec);
        CHECK(w.value == (vec < 16 ? (vec | APIC_LVT_MASKED) : vec), "timer vector %u -> 0x%x", vec, w.value);
        CHECK(!verdict(0x370, 4, vec | APIC_LVT_MASKED, true).security, "masked vector %u is fine", vec);
    }
    CHECK(!verdict(0x350, 4, 4u << 8 | 3, true).security, "NMI ignores the vector");
    CHECK(!verdict(0x350, 4, 7u << 8, true).security, "ExtINT on LINT0 ignores the vector");
    CHECK(!verdict(0x320, 4, 0x20 | 1u << 17, true).security, "periodic timer");
    CHECK(!verdict(0x320, 4, 0x20 | 2u << 17, true).security, "TSC-deadline where the CPU has it");
    struct apic_write_verdict w = verdict(0x320, 4, 0x20 | 2u << 17, false);
    CHECK(w.security && w.value == (0x20 | APIC_LVT_MASKED), "TSC-deadline without it: 0x%x", w.value);
    w = verdict(0x320, 4, 0x20 | 3u << 17, true);
    CHECK(w.security && w.value == (0x20 | APIC_LVT_MASKED), "reserved timer mode: 0x%x", w.value);
    CHECK(verdict(0x360, 4, 0x20 | 1u << 15, true).value == 0x20, "LINT1 is edge only");
    CHECK(verdict(0x330, 4, 0xfffeffff & ~0x700u, true).value == 0xff, "reserved bits cleared, delivery status RO");
}

static void test_icr(void)
{
    for (u32 mode = 0; mode < 8; mode++)
        for (u32 vec = 0; vec < 256; vec += 5) {
            struct apic_write_verdict w = verdict(0x300, 4, mode << 8 | vec | 1u << 14, true);
            bool sends = mode == 4 || mode == 5 || mode == 6 || ((mode == 0 || mode == 1) && vec >= 16);
            CHECK((w.action == APIC_WRITE_PASS) == sends, "ICR mode %u vector %u", mode, vec);
            CHECK(w.security == !sends, "ICR mode %u vector %u security", mode, vec);
        }
    CHECK(verdict(0x300, 4, 0xffffffff & ~0x700u, true).value == 0x000cc8ff, "ICR low reserved bits cleared");
}

/* The fetch policy (apic_policy_fetch): a slot's bytes from the fetch on, zeros after the register. */
static const char *fetch(const char *hex_bytes, bool long_mode)
{
    u8 b[16] = { 0 };
    u32 n = 0;
    for (const char *p = hex_bytes; *p && n < 4; p += 2) {
        unsigned v;
        sscanf(p, "%2x", &v);
        b[n++] = (u8)v;
    }
    return apic_policy_fetch(b, 16, long_mode);
}

static void test_fetch(void)
{
    /* Run as one step: RET (the documented case), ADD [EAX], AL, BOUND, MOV ES, XGETBV, INC EAX then
       INT n in 32-bit code (40h is no prefix there), POPF, IRET, JMP $. */
    static const char *const runs[] = { "c3", "0000", "6200", "8ec0", "0f01d0", "40cd", "9d", "cf", "ebfe" };
    for (u32 i = 0; i < sizeof(runs) / sizeof(runs[0]); i++)
        CHECK(fetch(runs[i], false) == NULL, "%s refused: %s", runs[i], fetch(runs[i], false));
    /* #UD: POP SS, MOV SS (plain, segment- and size-prefixed), INT3 / INT n / INTO / INT1, SYSCALL,
       SYSENTER, HLT (plain, REP-prefixed), MWAIT, MWAITX; in 64-bit code behind a REX prefix too. */
    static const char *const refused[] = { "17", "2e17", "8ed0", "668ed0", "8e10", "cc", "cd80", "ce", "f1",
                                           "0f05", "0f34", "f4", "f3f4", "0f01c9", "0f01fb" };
    for (u32 i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
        CHECK(fetch(refused[i], false) != NULL, "%s runs", refused[i]);
    CHECK(fetch("480f05", true) != NULL, "REX.W SYSCALL runs in 64-bit code");
    CHECK(fetch("40f4", true) != NULL, "REX HLT runs in 64-bit code");
    CHECK(fetch("40f4", false) == NULL, "INC EAX refused in 32-bit code");
    /* A prefix run ends at the first zero byte of the slot (the register's bytes end at 4). */
    CHECK(fetch("2e2e2e2e", false) == NULL, "four prefixes then ADD refused");
}

int main(void)
{
    test_register_map();
    test_sizes_and_alignment();
    test_value_masks();
    test_lvt_modes();
    test_lvt_vectors_and_timer();
    test_icr();
    test_fetch();
    return check_summary();
}
