/*
 * The MSR policy table (see msr_policy.h for the rules and the default). First matching entry wins.
 * MSR numbers: Intel SDM Vol. 4 (Model-Specific Registers), AMD APM Vol. 2 Appendix A.
 * Pure logic: no MSR is touched here (the native test builds this file on the host).
 */
#include <hv/msr_policy.h>

#define R(first, last, rd, wr, on_, cond_, emul_, why) \
    { (first), (last), (rd), (wr), (on_), (cond_), (emul_), (why) }
#define ANY MSR_IF_ALWAYS
#define NOEMUL MSR_EMUL_NONE

const struct msr_rule msr_rules[] = {
    /* --- owned by the guest: no exit ---------------------------------------------------------- */
    R(0x174, 0x176, MSR_PASS, MSR_PASS, MSR_ON_BOTH, ANY, NOEMUL,
      "SYSENTER_CS/ESP/EIP: guest state in the VMCS (SDM 25.4.1) and the VMCB save area (APM B-2)"),
    R(0x277, 0x277, MSR_PASS, MSR_PASS, MSR_ON_BOTH, ANY, NOEMUL,
      "PAT: saved and loaded by the VMCS PAT controls (SDM 26.7.1, 26.8.1); G_PAT under NPT (APM 15.25.8)"),
    R(0x6e0, 0x6e0, MSR_PASS, MSR_PASS, MSR_ON_BOTH, ANY, NOEMUL,
      "TSC_DEADLINE: the guest's own local APIC timer"),
    R(0xc0000081, 0xc0000084, MSR_PASS, MSR_PASS, MSR_ON_BOTH, ANY, NOEMUL,
      "STAR/LSTAR/CSTAR/SFMASK: the guest's SYSCALL; the hypervisor never executes SYSCALL"),
    R(0xc0000100, 0xc0000102, MSR_PASS, MSR_PASS, MSR_ON_BOTH, ANY, NOEMUL,
      "FS/GS base in the VMCS / VMCB; KERNEL_GS_BASE only matters to SWAPGS, which the hypervisor never runs"),
    R(0xc0000103, 0xc0000103, MSR_PASS, MSR_EXEC, MSR_ON_BOTH, ANY, NOEMUL,
      "TSC_AUX: the guest's RDTSCP/RDPID value; writes are traced and executed (CPU checks bits 63:32)"),
    R(0x48, 0x48, MSR_PASS, MSR_PASS, MSR_ON_BOTH, MSR_IF_SPEC_CTRL, NOEMUL,
      "SPEC_CTRL: the guest's own speculation controls, where CPUID says the CPU has them"),
    R(0x49, 0x49, MSR_GP, MSR_PASS, MSR_ON_BOTH, MSR_IF_PRED_CMD, NOEMUL,
      "PRED_CMD: write-only barrier command (a read is #GP, SDM Vol. 4 Table 2-2), where the CPU has it"),
    R(0xc0000080, 0xc0000080, MSR_PASS, MSR_PASS, MSR_ON_VMX, ANY, NOEMUL,
      "EFER (VT-x): saved and loaded by the VMCS EFER controls (SDM 26.7.1, 26.8.1)"),
    R(0x1d9, 0x1d9, MSR_PASS, MSR_PASS, MSR_ON_VMX, ANY, NOEMUL,
      "DEBUGCTL (VT-x): saved and loaded by the debug controls (SDM 26.7.1, 26.8.1)"),
    R(0x1d9, 0x1d9, MSR_EXEC, MSR_EXEC, MSR_ON_SVM, ANY, NOEMUL,
      "DEBUGCTL (SVM, no LBR virtualization): executed, the CPU checks it; the hypervisor uses no debug feature"),
    R(0xda0, 0xda0, MSR_PASS, MSR_EXEC, MSR_ON_BOTH, ANY, NOEMUL,
      "XSS: the guest's XSAVES supervisor-state mask (the hypervisor never runs XSAVES); writes CPU-checked"),
    R(0x179, 0x17b, MSR_EXEC, MSR_EXEC, MSR_ON_BOTH, ANY, NOEMUL,
      "MCG_CAP/STATUS/CTL: the guest OS handles machine checks (#MC is not intercepted); the CPU checks writes"),
    R(0x400, 0x47f, MSR_EXEC, MSR_EXEC, MSR_ON_BOTH, ANY, NOEMUL,
      "MCi_CTL/STATUS/ADDR/MISC: the guest's machine-check banks (Linux's MCE code panics on a #GP here)"),
    R(0x280, 0x29f, MSR_EXEC, MSR_EXEC, MSR_ON_VMX, ANY, NOEMUL,
      "MCi_CTL2 (CMCI): the guest's machine-check banks; the CPU checks writes"),

    /* --- local APIC: the guest's, except what would reach other CPUs or move the trap ---------- */
    R(0x1b, 0x1b, MSR_EMUL, MSR_EMUL, MSR_ON_BOTH, ANY, MSR_EMUL_APIC_BASE,
      "APIC_BASE: the xAPIC window may not move away from the trap; mode changes checked; the global "
      "enable is the guest's, the real APIC stays on (apic_emul.h)"),
    R(0x830, 0x830, MSR_PASS, MSR_EMUL, MSR_ON_BOTH, ANY, MSR_EMUL_X2APIC_ICR,
      "x2APIC ICR: INIT and SIPI are emulated (apic_emul.h); #GP in xAPIC mode"),
    R(0x800, 0x8ff, MSR_PASS, MSR_PASS, MSR_ON_BOTH, ANY, NOEMUL,
      "x2APIC registers: the guest owns its local APIC"),

    /* --- virtualized: the guest sees its own value -------------------------------------------- */
    R(0x10, 0x10, MSR_PASS, MSR_EMUL, MSR_ON_BOTH, ANY, MSR_EMUL_TSC,
      "TSC: reads see the TSC offset; a write moves the guest's TSC through the offset, not the host's"),
    R(0xfe, 0xfe, MSR_EMUL, MSR_GP, MSR_ON_BOTH, MSR_IF_MTRR, MSR_EMUL_MTRR,
      "MTRRcap: read-only (SDM 13.11.1)"),
    R(0x200, 0x21f, MSR_EMUL, MSR_EMUL, MSR_ON_BOTH, MSR_IF_MTRR, MSR_EMUL_MTRR,
      "variable MTRRs: the guest's own copy, checked (SDM 13.11.2.3); the host's memory types stay"),
    R(0x250, 0x250, MSR_EMUL, MSR_EMUL, MSR_ON_BOTH, MSR_IF_MTRR, MSR_EMUL_MTRR,
      "fixed MTRR 64K: the guest's own copy, checked (SDM 13.11.2.2)"),
    R(0x258, 0x259, MSR_EMUL, MSR_EMUL, MSR_ON_BOTH, MSR_IF_MTRR, MSR_EMUL_MTRR,
      "fixed MTRRs 16K: the guest's own copy, checked (SDM 13.11.2.2)"),
    R(0x268, 0x26f, MSR_EMUL, MSR_EMUL, MSR_ON_BOTH, MSR_IF_MTRR, MSR_EMUL_MTRR,
      "fixed MTRRs 4K: the guest's own copy, checked (SDM 13.11.2.2)"),
    R(0x2ff, 0x2ff, MSR_EMUL, MSR_EMUL, MSR_ON_BOTH, MSR_IF_MTRR, MSR_EMUL_MTRR,
      "MTRR_DEF_TYPE: the guest's own copy, checked (SDM 13.11.2.1)"),
    R(0x1a0, 0x1a0, MSR_EXEC, MSR_EMUL, MSR_ON_VMX, ANY, MSR_EMUL_MISC_ENABLE,
      "MISC_ENABLE: read for real; a write may not change it (XD disable, CPUID limit would reach the host)"),

    /* --- the virtualization extensions are hidden ---------------------------------------------- */
    R(0x3a, 0x3a, MSR_VENDOR, MSR_VENDOR, MSR_ON_VMX, ANY, NOEMUL,
      "FEATURE_CONTROL: reads without the VMXON enables, locked (vmx/vcpu.c)"),
    R(0x480, 0x491, MSR_GP, MSR_GP, MSR_ON_BOTH, ANY, NOEMUL,
      "VMX capability MSRs: VMX is hidden from the guest (no nested virtualization)"),
    R(0xc0000080, 0xc0000080, MSR_VENDOR, MSR_VENDOR, MSR_ON_SVM, ANY, NOEMUL,
      "EFER (SVM): SVME stays set underneath and reads 0; bits the CPU lacks are #GP (svm/vcpu.c)"),
    R(0xc0010114, 0xc0010114, MSR_VENDOR, MSR_VENDOR, MSR_ON_SVM, ANY, NOEMUL,
      "VM_CR: reads \"SVM disabled and locked\"; writes #GP (svm/vcpu.c)"),
    R(0xc0010117, 0xc0010117, MSR_GP, MSR_GP, MSR_ON_BOTH, ANY, NOEMUL,
      "VM_HSAVE_PA: the host save area's address: SVM is hidden"),

    /* --- refused: they would reach the host ---------------------------------------------------- */
    R(0x560, 0x561, MSR_GP, MSR_GP, MSR_ON_BOTH, ANY, NOEMUL,
      "Intel PT RTIT_OUTPUT_BASE/MASK_PTRS: trace output to host-physical addresses (PT is hidden)"),
    R(0x570, 0x572, MSR_GP, MSR_GP, MSR_ON_BOTH, ANY, NOEMUL,
      "Intel PT RTIT_CTL/STATUS/CR3_MATCH: a write primitive into hypervisor memory (PT is hidden)"),
    R(0x580, 0x587, MSR_GP, MSR_GP, MSR_ON_BOTH, ANY, NOEMUL,
      "Intel PT RTIT_ADDRn: PT is hidden"),
    R(0x79, 0x79, MSR_GP, MSR_GP, MSR_ON_BOTH, ANY, NOEMUL,
      "BIOS_UPDT_TRIG: a microcode update would load code into the CPU the hypervisor runs on"),
    R(0x8b, 0x8b, MSR_EXEC, MSR_EXEC, MSR_ON_BOTH, ANY, NOEMUL,
      "BIOS_SIGN_ID / PATCH_LEVEL: writing 0 before CPUID is how the revision is read (SDM 10.11.7.1)"),
    R(0x3b, 0x3b, MSR_EXEC, MSR_GP, MSR_ON_BOTH, ANY, NOEMUL,
      "TSC_ADJUST: a write moves the host's TSC; the guest moves its TSC through IA32_TSC"),
    R(0xc1, 0xc8, MSR_EXEC, MSR_GP, MSR_ON_BOTH, ANY, NOEMUL,
      "PMU counters: the host's (their overflow NMIs reach the hypervisor); readable, not programmable"),
    R(0x186, 0x18d, MSR_EXEC, MSR_GP, MSR_ON_BOTH, ANY, NOEMUL, "PMU event selects: the host's"),
    R(0x309, 0x30b, MSR_EXEC, MSR_GP, MSR_ON_BOTH, ANY, NOEMUL, "PMU fixed counters: the host's"),
    R(0x345, 0x345, MSR_EXEC, MSR_GP, MSR_ON_BOTH, ANY, NOEMUL, "PERF_CAPABILITIES: read-only"),
    R(0x38d, 0x390, MSR_EXEC, MSR_GP, MSR_ON_BOTH, ANY, NOEMUL,
      "PMU FIXED_CTR_CTRL / PERF_GLOBAL_STATUS/CTRL/OVF_CTRL: the host's"),
    R(0x4c1, 0x4c8, MSR_EXEC, MSR_GP, MSR_ON_BOTH, ANY, NOEMUL, "PMU full-width counters: the host's"),
    R(0xc0000300, 0xc0000303, MSR_EXEC, MSR_GP, MSR_ON_BOTH, ANY, NOEMUL, "AMD PerfMonV2 global: the host's"),
    R(0xc0010000, 0xc0010007, MSR_EXEC, MSR_GP, MSR_ON_BOTH, ANY, NOEMUL, "AMD PERF_CTL/CTR 0-3: the host's"),
    R(0xc0010200, 0xc001020b, MSR_EXEC, MSR_GP, MSR_ON_BOTH, ANY, NOEMUL, "AMD core PERF_CTL/CTR: the host's"),
    R(0xc0010010, 0xc0010010, MSR_EXEC, MSR_GP, MSR_ON_BOTH, ANY, NOEMUL,
      "SYSCFG: the host's memory-type and encryption enables (APM 7.9, 15.34); readable, not writable"),
    R(0xc0010015, 0xc0010015, MSR_EXEC, MSR_GP, MSR_ON_BOTH, ANY, NOEMUL,
      "HWCR: the host's (SMM lock, cache and TLB controls); readable, not writable"),
    R(0xc0010016, 0xc0010019, MSR_EXEC, MSR_GP, MSR_ON_BOTH, ANY, NOEMUL,
      "IORRs: route physical ranges to MMIO on the host (APM 7.9.1); readable, not writable"),
    R(0xc001001a, 0xc001001a, MSR_EXEC, MSR_GP, MSR_ON_BOTH, ANY, NOEMUL,
      "TOP_MEM: the host's DRAM/MMIO split (APM 7.9.4); readable, not writable"),
    R(0xc001001d, 0xc001001d, MSR_EXEC, MSR_GP, MSR_ON_BOTH, ANY, NOEMUL,
      "TOP_MEM2: the host's DRAM above 4 GiB (APM 7.9.4); readable, not writable"),
};

const u32 msr_rule_count = sizeof(msr_rules) / sizeof(msr_rules[0]);

static bool cond_holds(const struct msr_cpu *c, u8 cond)
{
    switch (cond) {
    case MSR_IF_SPEC_CTRL:
        return c->spec_ctrl;
    case MSR_IF_PRED_CMD:
        return c->pred_cmd;
    case MSR_IF_MTRR:
        return c->mtrr;
    default:
        return true;
    }
}

/* The table's order decides (first match wins); the index only narrows which entries to ask. */
static const struct msr_rule *first_match(const struct msr_cpu *c, u32 msr, const u8 *idx, u32 n)
{
    for (u32 i = 0; i < n; i++) {
        const struct msr_rule *r = &msr_rules[idx ? idx[i] : i];
        if (msr >= r->first && msr <= r->last && (r->on & c->on) && cond_holds(c, r->cond))
            return r;
    }
    return 0;
}

/*
 * An index for msr_policy_lookup (issue 18: the linear search cost ~290 instructions for MTRRcap). The
 * rules' edges (first, last + 1) cut the MSR space into pieces no rule edge falls inside; each piece
 * lists the rules covering it, in table order (overlaps are few: the x2APIC ICR, the per-back-end
 * DEBUGCTL and EFER). A lookup binary-searches the piece and asks only its rules. Built at the first
 * lookup from the const table; a CPU that finds it being built searches linearly meanwhile.
 */
#define INDEX_CUTS_MAX  (2 * 64)
#define INDEX_PER_PIECE 4
static u32 index_cuts[INDEX_CUTS_MAX];              /* sorted piece starts: piece i = [cuts[i], cuts[i+1]) */
static u8 index_rules[INDEX_CUTS_MAX][INDEX_PER_PIECE];
static u8 index_nrules[INDEX_CUTS_MAX];
static u32 index_ncuts;
enum { INDEX_NONE, INDEX_BUILDING, INDEX_READY, INDEX_UNUSABLE };
static u32 index_state;

static void add_cut(u32 at)
{
    u32 i = 0;
    while (i < index_ncuts && index_cuts[i] < at)
        i++;
    if (i < index_ncuts && index_cuts[i] == at)
        return;
    for (u32 j = index_ncuts; j > i; j--)
        index_cuts[j] = index_cuts[j - 1];
    index_cuts[i] = at;
    index_ncuts++;
}

static bool build_index(void)
{
    if (msr_rule_count > 255 || 2 * msr_rule_count > INDEX_CUTS_MAX)
        return false;
    for (u32 i = 0; i < msr_rule_count; i++) {
        add_cut(msr_rules[i].first);
        if (msr_rules[i].last != 0xffffffffu)
            add_cut(msr_rules[i].last + 1);
    }
    for (u32 p = 0; p < index_ncuts; p++)
        for (u32 i = 0; i < msr_rule_count; i++) {
            if (index_cuts[p] < msr_rules[i].first || index_cuts[p] > msr_rules[i].last)
                continue;
            if (index_nrules[p] == INDEX_PER_PIECE)
                return false;
            index_rules[p][index_nrules[p]++] = (u8)i;
        }
    return true;
}

bool msr_policy_indexed(void)
{
    u32 st = __atomic_load_n(&index_state, __ATOMIC_ACQUIRE);
    if (st == INDEX_NONE && __atomic_compare_exchange_n(&index_state, &st, INDEX_BUILDING, false,
                                                        __ATOMIC_ACQUIRE, __ATOMIC_ACQUIRE)) {
        st = build_index() ? INDEX_READY : INDEX_UNUSABLE;
        __atomic_store_n(&index_state, st, __ATOMIC_RELEASE);
    }
    return st == INDEX_READY;
}

const struct msr_rule *msr_policy_lookup(const struct msr_cpu *c, u32 msr)
{
    if (!msr_policy_indexed())
        return first_match(c, msr, 0, msr_rule_count);
    /* The last piece starting at or below msr. */
    u32 lo = 0, hi = index_ncuts;
    while (lo < hi) {
        u32 mid = (lo + hi) / 2;
        if (index_cuts[mid] <= msr)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return 0;
    return first_match(c, msr, index_rules[lo - 1], index_nrules[lo - 1]);
}

/* The table searched in order, without the index: what the index must agree with (the native test). */
const struct msr_rule *msr_policy_lookup_linear(const struct msr_cpu *c, u32 msr)
{
    return first_match(c, msr, 0, msr_rule_count);
}

/*
 * The three ranges MSRs are defined in (Intel: 0-1FFFh and C000_0000h-C000_1FFFh, the VT-x bitmap's
 * reach, SDM 26.6.9; AMD adds C001_0000h-C001_1FFFh, APM 15.11). Elsewhere there is no MSR to offer:
 * #GP, without executing it (QEMU's TCG reads 0 for any unknown MSR instead of raising #GP).
 * Limitation: AMD's SMCA bank MSRs at C000_2000h lie outside too and are hidden as well.
 */
static bool in_msr_ranges(u32 msr)
{
    return msr <= 0x1fff || msr - 0xc0000000u <= 0x1fff || msr - 0xc0010000u <= 0x1fff;
}

enum msr_action msr_policy_action_uncached(const struct msr_cpu *c, u32 msr, bool write)
{
    const struct msr_rule *r = msr_policy_lookup(c, msr);
    enum msr_action a = r ? (enum msr_action)(write ? r->write : r->read) : MSR_DEFAULT;
    if (a != MSR_DEFAULT)
        return a;
    /* Default: a read tells the guest what the CPU says; a write would change the host's CPU. */
    if (!in_msr_ranges(msr))
        return MSR_GP;
    return write ? MSR_GP : MSR_EXEC;
}

/*
 * The decisions of recent MSRs (issue 18: the index search cost ~200 instructions per RDMSR exit): a
 * direct-mapped cache, one 64-bit word per entry, [63:32] the MSR, [31:24] the matching rule's emulation
 * (enum msr_emul), [23:16] the CPU flavour (what else decides a lookup: msr_cpu's vendor and CPUID
 * conditions; bit 23 marks the entry used), [15:8] the read action, [7:0] the write action. The table is const and a decision is a pure function of the
 * key, so any CPU may fill any entry: whole words (aligned 64-bit atomics) never mix two entries, and
 * two CPUs racing write the same word for the same key.
 */
#define ACTION_CACHE 64
static u64 action_cache[ACTION_CACHE];

static u32 flavour(const struct msr_cpu *c)
{
    return 0x80u | (u32)c->on << 3 | (u32)c->spec_ctrl << 2 | (u32)c->pred_cmd << 1 | (u32)c->mtrr;
}

/* A miss: the decisions from the table into the entry (out of line: the hit needs no stack frame). */
static __attribute__((noinline)) u64 cache_fill(const struct msr_cpu *c, u32 msr, u64 key, u64 *slot)
{
    const struct msr_rule *r = msr_policy_lookup(c, msr);
    u64 e = key | (u64)(r ? r->emul : MSR_EMUL_NONE) << 24 | (u64)msr_policy_action_uncached(c, msr, false) << 8 |
            msr_policy_action_uncached(c, msr, true);
    __atomic_store_n(slot, e, __ATOMIC_RELAXED);
    return e;
}

static inline u64 cached(const struct msr_cpu *c, u32 msr)
{
    u64 *slot = &action_cache[(msr ^ (msr >> 16)) & (ACTION_CACHE - 1)];    /* C000_xxxx and 0000_xxxx apart */
    u64 key = (u64)msr << 32 | flavour(c) << 16, e = __atomic_load_n(slot, __ATOMIC_RELAXED);
    return (e & 0xffffffff00ff0000ull) == key ? e : cache_fill(c, msr, key, slot);
}

enum msr_action msr_policy_action(const struct msr_cpu *c, u32 msr, bool write)
{
    u64 e = cached(c, msr);
    return (enum msr_action)(write ? e & 0xff : (e >> 8) & 0xff);
}

enum msr_emul msr_policy_emul(const struct msr_cpu *c, u32 msr)
{
    return (enum msr_emul)((cached(c, msr) >> 24) & 0xff);
}

void msr_policy_for_each_pass(const struct msr_cpu *c, void (*pass)(u32 msr, bool write, void *ctx), void *ctx)
{
    for (u32 i = 0; i < msr_rule_count; i++) {
        const struct msr_rule *r = &msr_rules[i];
        if (r->read != MSR_PASS && r->write != MSR_PASS)
            continue;
        /* An earlier entry may take part of the range (the x2APIC ICR): ask the policy per MSR. */
        for (u32 msr = r->first; msr <= r->last; msr++) {
            for (int w = 0; w < 2; w++)
                if (msr_policy_action(c, msr, w) == MSR_PASS)
                    pass(msr, w, ctx);
        }
    }
}

/* Memory types an MTRR may hold: UC, WC, WT, WP, WB (SDM Vol. 3A 13.11.1, Table 13-8). */
static bool valid_type(u64 t)
{
    return t == 0 || t == 1 || t == 4 || t == 5 || t == 6;
}

bool msr_mtrr_exists(u32 msr, u64 mtrrcap)
{
    if (msr == 0xfe || msr == 0x2ff)
        return true;
    if (msr >= 0x200 && msr < 0x250)
        return (msr - 0x200) / 2 < (mtrrcap & 0xff);                /* VCNT pairs (SDM 13.11.2.3) */
    if (msr == 0x250 || msr == 0x258 || msr == 0x259 || (msr >= 0x268 && msr <= 0x26f))
        return (mtrrcap & (1ull << 8)) != 0;                        /* MTRRcap.FIX */
    return false;
}

bool msr_mtrr_write_ok(u32 msr, u64 value, u64 mtrrcap, u8 phys_bits)
{
    u64 above = phys_bits >= 64 ? 0 : ~0ull << phys_bits;          /* bits at or above MAXPHYADDR */
    if (msr == 0xfe || !msr_mtrr_exists(msr, mtrrcap))
        return false;                                               /* MTRRcap is read-only */
    if (msr == 0x2ff) {
        /* DEF_TYPE: type 7:0, FE bit 10, E bit 11; 9:8 and 63:12 reserved (SDM 13.11.2.1). */
        if (value & ~0xcffull)
            return false;
        if ((value & (1ull << 10)) && !(mtrrcap & (1ull << 8)))
            return false;                                           /* FE without fixed ranges */
        return valid_type(value & 0xff);
    }
    if (msr >= 0x200 && msr < 0x250) {
        if ((msr & 1) == 0)                                         /* PHYSBASE: type 7:0, 11:8 reserved */
            return !(value & (0xf00ull | above)) && valid_type(value & 0xff);
        return !(value & (0x7ffull | above));                      /* PHYSMASK: 10:0 reserved, V bit 11 */
    }
    /* Fixed ranges: eight type bytes (SDM 13.11.2.2). */
    for (int i = 0; i < 8; i++)
        if (!valid_type((value >> (8 * i)) & 0xff))
            return false;
    return true;
}
