/*
 * Host-side checks of the MSR policy table (hv/core/guest/msr_policy.c) and of the EFER bits the SVM back
 * end accepts (hv/svm/efer.c): the same sources the hypervisor links, under ASan/UBSan. Prints
 * "N checks passed" or "M of N checks failed" (tests/unit/test_native_checks.py reads it).
 */
#include <stdio.h>
#include <string.h>

#include <hv/msr_policy.h>
#include <hv/svm/efer.h>

#include "check.h"

static const struct msr_cpu vmx = { .on = MSR_ON_VMX, .spec_ctrl = true, .pred_cmd = true, .mtrr = true, .phys_bits = 39 };
static const struct msr_cpu svm = { .on = MSR_ON_SVM, .spec_ctrl = false, .pred_cmd = false, .mtrr = true, .phys_bits = 40 };
static const struct msr_cpu *const both[] = { &vmx, &svm };

/* A VT-x style bitmap built from the policy: 1 = exits (0..1FFFh and C000_0000h..C000_1FFFh, read / write). */
static unsigned char bitmap[2][2][0x2000];

static void pass(u32 msr, bool write, void *ctx)
{
    (void)ctx;
    u32 hi = msr >= 0xc0000000;
    bitmap[write][hi][msr & 0x1fff] = 0;
}

static bool passes(u32 msr, bool write)
{
    return !bitmap[write][msr >= 0xc0000000][msr & 0x1fff];
}

static void build(const struct msr_cpu *c)
{
    memset(bitmap, 1, sizeof(bitmap));
    msr_policy_for_each_pass(c, pass, NULL);
}

static void test_table_shape(void)
{
    for (u32 i = 0; i < msr_rule_count; i++) {
        const struct msr_rule *r = &msr_rules[i];
        CHECK(r->reason && strlen(r->reason) > 10, "rule %u (0x%x) has a reason", i, r->first);
        CHECK(r->first <= r->last, "rule %u range", i);
        CHECK(r->on && !(r->on & ~MSR_ON_BOTH), "rule %u vendor", i);
        CHECK(r->read != MSR_DEFAULT || r->write != MSR_DEFAULT, "rule %u decides something", i);
        CHECK((r->read == MSR_EMUL || r->write == MSR_EMUL) == (r->emul != MSR_EMUL_NONE),
              "rule %u (0x%x): an emulation exactly where an action is MSR_EMUL", i, r->first);
    }
}

/* Everything the issue lists as a host-reaching MSR exits and is refused (write) on both back ends. */
static void test_dangerous(void)
{
    static const u32 gp_both[] = { 0x560, 0x561, 0x570, 0x571, 0x572, 0x580, 0x587, 0x79, 0x480, 0x491,
                                   0xc0010117 };
    static const u32 write_gp[] = { 0x38f, 0x38e, 0x390, 0x186, 0xc1, 0x309, 0x38d, 0xc0010010, 0xc001001a,
                                    0xc001001d, 0xc0010016, 0xc0010019, 0xc0010015, 0xc0010000, 0xc0010200,
                                    0x3b, 0xfe, 0xc0000300 };
    for (int v = 0; v < 2; v++) {
        const struct msr_cpu *c = both[v];
        for (u32 i = 0; i < sizeof(gp_both) / sizeof(gp_both[0]); i++) {
            CHECK(msr_policy_action(c, gp_both[i], false) == MSR_GP, "%s 0x%x read #GP", v ? "svm" : "vmx", gp_both[i]);
            CHECK(msr_policy_action(c, gp_both[i], true) == MSR_GP, "%s 0x%x write #GP", v ? "svm" : "vmx", gp_both[i]);
        }
        for (u32 i = 0; i < sizeof(write_gp) / sizeof(write_gp[0]); i++)
            CHECK(msr_policy_action(c, write_gp[i], true) == MSR_GP, "%s 0x%x write #GP", v ? "svm" : "vmx",
                  write_gp[i]);
        /* MTRRs: the guest's own copy (read and write emulated, MTRRcap read-only). */
        static const u32 mtrr[] = { 0x200, 0x201, 0x21f, 0x250, 0x258, 0x259, 0x268, 0x26f, 0x2ff };
        for (u32 i = 0; i < sizeof(mtrr) / sizeof(mtrr[0]); i++) {
            CHECK(msr_policy_action(c, mtrr[i], false) == MSR_EMUL, "0x%x read emulated", mtrr[i]);
            CHECK(msr_policy_action(c, mtrr[i], true) == MSR_EMUL, "0x%x write emulated", mtrr[i]);
        }
        CHECK(msr_policy_action(c, 0xfe, false) == MSR_EMUL, "MTRRcap read emulated");
        CHECK(msr_policy_action(c, 0x10, true) == MSR_EMUL, "TSC write through the offset");
        CHECK(msr_policy_action(c, 0x10, false) == MSR_PASS, "TSC read direct");
        CHECK(msr_policy_action(c, 0x830, true) == MSR_EMUL, "x2APIC ICR write emulated");
        CHECK(msr_policy_action(c, 0x1b, true) == MSR_EMUL, "APIC_BASE write emulated");
        CHECK(msr_policy_action(c, 0x1b, false) == MSR_EMUL, "APIC_BASE read emulated (the guest's global enable)");
        /* The default: an unlisted MSR in the architectural ranges reads for real, writes #GP. */
        CHECK(msr_policy_action(c, 0x1234, false) == MSR_EXEC, "unlisted read executed");
        CHECK(msr_policy_action(c, 0x1234, true) == MSR_GP, "unlisted write #GP");
        CHECK(msr_policy_action(c, 0xc0011029, true) == MSR_GP, "unlisted AMD write #GP");
        CHECK(msr_policy_action(c, 0x12345678, false) == MSR_GP, "outside every range: read #GP");
        CHECK(msr_policy_action(c, 0x40000000, true) == MSR_GP, "hypervisor range: write #GP");
    }
    /* Vendor differences. */
    CHECK(msr_policy_action(&vmx, 0xc0000080, true) == MSR_PASS, "VT-x EFER: the VMCS switches it");
    CHECK(msr_policy_action(&svm, 0xc0000080, true) == MSR_VENDOR, "SVM EFER: the back end (SVME hidden)");
    CHECK(msr_policy_action(&svm, 0xc0010114, false) == MSR_VENDOR, "SVM VM_CR: the back end");
    CHECK(msr_policy_action(&vmx, 0xc0010114, true) == MSR_GP, "VT-x: VM_CR is unlisted: write #GP");
    CHECK(msr_policy_action(&vmx, 0x3a, false) == MSR_VENDOR, "VT-x FEATURE_CONTROL: the back end");
    CHECK(msr_policy_action(&svm, 0x3a, true) == MSR_GP, "SVM: FEATURE_CONTROL write #GP");
    /* CPUID conditions: SPEC_CTRL/PRED_CMD only where the CPU has them; no MTRRs: the default. */
    CHECK(msr_policy_action(&vmx, 0x48, true) == MSR_PASS, "SPEC_CTRL owned where CPUID has it");
    CHECK(msr_policy_action(&svm, 0x48, true) == MSR_GP, "SPEC_CTRL write #GP where CPUID lacks it");
    CHECK(msr_policy_action(&vmx, 0x49, false) == MSR_GP, "PRED_CMD is write-only");
    struct msr_cpu nomtrr = vmx;
    nomtrr.mtrr = false;
    CHECK(msr_policy_action(&nomtrr, 0x2ff, true) == MSR_GP, "no MTRRs: DEF_TYPE write #GP");
}

/* Exactly these are the guest's without an exit (one direction where noted). */
static void test_pass_set(void)
{
    for (int v = 0; v < 2; v++) {
        const struct msr_cpu *c = both[v];
        build(c);
        u32 count[2] = { 0, 0 };
        for (int w = 0; w < 2; w++)
            for (int hi = 0; hi < 2; hi++)
                for (u32 i = 0; i < 0x2000; i++)
                    count[w] += !bitmap[w][hi][i];
        /*
         * Reads: SYSENTER 3, PAT, TSC_DEADLINE, STAR..SFMASK 4, FS/GS/KGS 3, TSC_AUX, XSS,
         * x2APIC 256, TSC; VT-x adds SPEC_CTRL, EFER, DEBUGCTL. Writes: the same without TSC_AUX, XSS, ICR, TSC;
         * VT-x adds SPEC_CTRL, PRED_CMD, EFER, DEBUGCTL. APIC_BASE is emulated both ways (its global enable).
         */
        u32 reads = 3 + 1 + 1 + 4 + 3 + 1 + 1 + 256 + 1 + (v == 0 ? 3 : 0);
        u32 writes = 3 + 1 + 1 + 4 + 3 + 255 + (v == 0 ? 4 : 0);
        CHECK(count[0] == reads, "%s: %u reads owned, expected %u", v ? "svm" : "vmx", count[0], reads);
        CHECK(count[1] == writes, "%s: %u writes owned, expected %u", v ? "svm" : "vmx", count[1], writes);
        CHECK(passes(0xc0000100, true) && passes(0x174, true) && passes(0x277, true) && passes(0x80b, true),
              "FS_BASE, SYSENTER_CS, PAT, x2APIC EOI owned");
        CHECK(!passes(0x830, true) && passes(0x830, false), "x2APIC ICR: write exits");
        CHECK(!passes(0xc0000103, true) && passes(0xc0000103, false), "TSC_AUX: write exits");
        CHECK(!passes(0x570, true) && !passes(0x570, false) && !passes(0x200, true) && !passes(0x10, true),
              "RTIT_CTL, MTRR, TSC writes exit");
        CHECK(passes(0xc0000080, true) == (v == 0), "EFER owned only under VT-x");
    }
}

static void test_mtrr_checks(void)
{
    u64 cap = 8 | (1u << 8) | (1u << 10);       /* VCNT 8, FIX, WC */
    CHECK(!msr_mtrr_write_ok(0xfe, cap, cap, 36), "MTRRcap is read-only");
    CHECK(msr_mtrr_write_ok(0x2ff, 0xc06, cap, 36), "DEF_TYPE E|FE|WB");
    CHECK(!msr_mtrr_write_ok(0x2ff, 0x802, cap, 36), "DEF_TYPE type 2 reserved");
    CHECK(!msr_mtrr_write_ok(0x2ff, 0x807, cap, 36), "DEF_TYPE type 7 reserved");
    CHECK(!msr_mtrr_write_ok(0x2ff, 0x100, cap, 36), "DEF_TYPE bit 8 reserved");
    CHECK(!msr_mtrr_write_ok(0x2ff, 1ull << 12, cap, 36), "DEF_TYPE bit 12 reserved");
    CHECK(!msr_mtrr_write_ok(0x2ff, 0x400, 8, 36), "DEF_TYPE.FE without fixed ranges");
    CHECK(msr_mtrr_write_ok(0x200, 0x100006, cap, 36), "PHYSBASE0 WB at 1 MiB");
    CHECK(!msr_mtrr_write_ok(0x200, 0x100003, cap, 36), "PHYSBASE type 3 reserved");
    CHECK(!msr_mtrr_write_ok(0x200, 0x100106, cap, 36), "PHYSBASE bit 8 reserved");
    CHECK(!msr_mtrr_write_ok(0x200, (1ull << 36) | 6, cap, 36), "PHYSBASE above MAXPHYADDR 36");
    CHECK(msr_mtrr_write_ok(0x200, (1ull << 36) | 6, cap, 40), "PHYSBASE bit 36 with MAXPHYADDR 40");
    CHECK(msr_mtrr_write_ok(0x201, 0xff0000800ull, cap, 36), "PHYSMASK valid");
    CHECK(!msr_mtrr_write_ok(0x201, 0xff0000801ull, cap, 36), "PHYSMASK bit 0 reserved");
    CHECK(!msr_mtrr_write_ok(0x210, 6, cap, 36), "PHYSBASE8 past VCNT 8");
    CHECK(msr_mtrr_write_ok(0x20e, 6, cap, 36), "PHYSBASE7 within VCNT 8");
    CHECK(msr_mtrr_write_ok(0x250, 0x0606060606060606ull, cap, 36), "FIX64K all WB");
    CHECK(!msr_mtrr_write_ok(0x268, 0x0606060606020606ull, cap, 36), "FIX4K with a type 2 byte");
    CHECK(!msr_mtrr_write_ok(0x250, 0, 8, 36), "fixed ranges without MTRRcap.FIX");
    CHECK(!msr_mtrr_exists(0x260, cap), "0x260 is no MTRR");
}

static void test_svm_efer(void)
{
    u32 e1d = (1u << 11) | (1u << 29) | (1u << 20);     /* SYSCALL, LM, NX */
    u64 base = svm_efer_cpuid_bits(0, e1d, 0, 0);
    CHECK(base == (EFER_BIT_SCE | EFER_BIT_LME | EFER_BIT_LMA | EFER_BIT_NXE | EFER_BIT_LMSLE), "base 0x%llx",
          (unsigned long long)base);
    CHECK(!(svm_efer_cpuid_bits(0, e1d, 1u << 20, 0) & EFER_BIT_LMSLE), "EferLmsleUnsupported");
    CHECK(svm_efer_cpuid_bits(0, e1d, 0, 1u << 8) & EFER_BIT_AUTOIBRS, "AutoIBRS from 8000_0021 EAX[8]");
    CHECK(!(base & EFER_BIT_AUTOIBRS), "no AutoIBRS without CPUID");
    CHECK(svm_efer_cpuid_bits(1u << 17, e1d, 0, 0) & EFER_BIT_TCE, "TCE from 8000_0001 ECX[17]");
    CHECK(svm_efer_cpuid_bits(0, e1d | (1u << 25), 0, 0) & EFER_BIT_FFXSR, "FFXSR");
    CHECK(!(svm_efer_cpuid_bits(~0u, ~0u, ~0u, ~0u) & EFER_BIT_SVME), "SVME never offered");
    CHECK(!(svm_efer_cpuid_bits(~0u, ~0u, ~0u, ~0u) & ~0x36ed01ull), "only architectural bits");
}

/* One MSR on every CPU flavour: the indexed lookup gives the rule the in-order search gives. */
static unsigned index_mismatches;
static void same_rule(u32 msr)
{
    for (int on = 0; on < 2; on++)
        for (int f = 0; f < 8; f++) {
            struct msr_cpu c = { .on = on ? MSR_ON_SVM : MSR_ON_VMX, .spec_ctrl = f & 1, .pred_cmd = (f >> 1) & 1,
                                 .mtrr = (f >> 2) & 1, .phys_bits = 40 };
            if (msr_policy_lookup(&c, msr) != msr_policy_lookup_linear(&c, msr)) {
                if (index_mismatches++ < 10)
                    printf("index mismatch: MSR %#x on=%d flags=%d\n", msr, c.on, f);
            }
        }
}

/* Issue 18: the binary-searched index agrees with the table's first-match order everywhere. */
static void test_lookup_index(void)
{
    CHECK(msr_policy_indexed(), "the lookup index is built and used");
    unsigned n = 0;
    for (u32 i = 0; i < msr_rule_count; i++) {
        const struct msr_rule *r = &msr_rules[i];
        for (u32 m = r->first; m <= r->last; m++, n++)
            same_rule(m);
        same_rule(r->first - 1);
        same_rule(r->last + 1);
        n += 2;
    }
    /* The three MSR ranges and a little past them, both ends of the space, and a scattered sweep. */
    static const u32 bases[] = { 0, 0xc0000000u, 0xc0010000u };
    for (unsigned b = 0; b < 3; b++)
        for (u32 m = bases[b]; m < bases[b] + 0x2100; m++, n++)
            same_rule(m);
    for (u32 m = 0xffffff00u; m != 0; m++, n++)
        same_rule(m);
    for (u32 k = 0, m = 1; k < 100000; k++, m = m * 1664525u + 1013904223u, n++)
        same_rule(m);
    CHECK(index_mismatches == 0, "%u of %u MSRs looked up differently through the index", index_mismatches, n);
    /* A spot check that would fail if both searches were wrong the same way. */
    CHECK(msr_policy_lookup(&svm, 0xfe) && msr_policy_lookup(&svm, 0xfe)->emul == MSR_EMUL_MTRR, "MTRRcap");
    CHECK(msr_policy_lookup(&vmx, 0x830)->emul == MSR_EMUL_X2APIC_ICR, "x2APIC ICR before the x2APIC range");
    CHECK(msr_policy_lookup(&svm, 0x1d9)->read == MSR_EXEC && msr_policy_lookup(&vmx, 0x1d9)->read == MSR_PASS,
          "DEBUGCTL per back end");
    CHECK(msr_policy_lookup(&vmx, 0x12345678) == 0, "no rule outside the table");
}

/*
 * Issue 18: the cached msr_policy_action gives what the uncached one gives, cold and warm, with every
 * CPU flavour interleaved on the same MSRs (they share cache entries: the flavour is in the key) and
 * MSRs that collide in the cache (0x10 and 0xc0000010 share an index; so do 0xfe and 0x3e).
 */
static void test_action_cache(void)
{
    unsigned bad = 0, n = 0;
    static const u32 bases[] = { 0, 0xc0000000u, 0xc0010000u, 0x40000000u };
    for (int round = 0; round < 2; round++)
        for (unsigned b = 0; b < 4; b++)
            for (u32 m = bases[b]; m < bases[b] + 0x2100; m++)
                for (int f = 0; f < 16; f++) {
                    struct msr_cpu c = { .on = f & 8 ? MSR_ON_SVM : MSR_ON_VMX, .spec_ctrl = f & 1,
                                         .pred_cmd = (f >> 1) & 1, .mtrr = (f >> 2) & 1, .phys_bits = 40 };
                    for (int w = 0; w < 2; w++, n++)
                        if (msr_policy_action(&c, m, w) != msr_policy_action_uncached(&c, m, w) && bad++ < 10)
                            printf("cache mismatch: MSR %#x flavour %d %s\n", m, f, w ? "write" : "read");
                    const struct msr_rule *r = msr_policy_lookup(&c, m);
                    n++;
                    if (msr_policy_emul(&c, m) != (r ? r->emul : MSR_EMUL_NONE) && bad++ < 10)
                        printf("cache mismatch: MSR %#x flavour %d emulation\n", m, f);
                }
    CHECK(bad == 0, "%u of %u cached MSR decisions differ from the table's", bad, n);
    /* Alternating colliding MSRs and flavours: each answer is its own, never the entry's last owner's. */
    for (int i = 0; i < 4; i++) {
        CHECK(msr_policy_action(&vmx, 0x10, true) == MSR_EMUL, "TSC write emulated (after a collision)");
        CHECK(msr_policy_action(&vmx, 0xc0000010, true) == MSR_GP, "C000_0010h write #GP (after a collision)");
        CHECK(msr_policy_action(&vmx, 0x48, true) == MSR_PASS, "SPEC_CTRL owned on VT-x with it");
        CHECK(msr_policy_action(&svm, 0x48, true) == MSR_GP, "SPEC_CTRL #GP on SVM without it");
        CHECK(msr_policy_emul(&vmx, 0x10) == MSR_EMUL_TSC, "TSC emulation (after a collision)");
        CHECK(msr_policy_emul(&vmx, 0xc0000010) == MSR_EMUL_NONE, "C000_0010h: no emulation");
    }
}

int main(void)
{
    test_lookup_index();
    test_action_cache();
    test_table_shape();
    test_dangerous();
    test_pass_set();
    test_mtrr_checks();
    test_svm_efer();
    return check_summary();
}
