/*
 * The MSR policy: ONE table (core/guest/msr_policy.c), shared by both back ends, says for every MSR what a
 * guest RDMSR / WRMSR does, with the reason beside each entry. Deny by default:
 *   - the guest owns an MSR directly (no exit) only when the table says MSR_PASS;
 *   - an MSR the table does not list exits on every access: a read is executed for real under a fault
 *     fixup (the guest sees what the CPU says, #GP where the CPU raises it: reading a model-specific
 *     MSR changes nothing), a write is #GP (it would change the CPU the hypervisor runs on).
 * The VT-x MSR bitmap and the SVM MSR permission map are both built from the table
 * (msr_policy_for_each_pass), and every intercepted access is decided by msr_policy_lookup() in core's
 * exit_msr_read / exit_msr_write. This header and msr_policy.c are pure logic (no MSR access), so the
 * host-side native test (tests/native/test_msr_policy.c) checks the same table the hypervisor uses.
 */
#ifndef HV_MSR_POLICY_H
#define HV_MSR_POLICY_H

#include <hv/types.h>

enum msr_action {
    MSR_DEFAULT = 0,    /* not decided by this entry for this direction: the default above */
    MSR_PASS,           /* the guest owns it: no exit (the VMCS / VMCB switches it, or the host never uses it) */
    MSR_EXEC,           /* exits; executed for real under a fault fixup, a #GP is reflected */
    MSR_EMUL,           /* exits; the guest's own copy or a checked emulation (msr_emul_*) */
    MSR_VENDOR,         /* exits; the back end decides (vcpu_ops.msr); one without it: #GP */
    MSR_GP,             /* exits; #GP(0) */
};

/* Which entries apply: some MSRs differ between the architectures (EFER, SVM's MSRs). */
#define MSR_ON_VMX  1u
#define MSR_ON_SVM  2u
#define MSR_ON_BOTH (MSR_ON_VMX | MSR_ON_SVM)

/* Conditions on CPUID: the entry applies only on a CPU that has the feature. */
enum msr_cond { MSR_IF_ALWAYS = 0, MSR_IF_SPEC_CTRL, MSR_IF_PRED_CMD, MSR_IF_MTRR };

/* What a guest write is emulated as (MSR_EMUL entries). */
enum msr_emul {
    MSR_EMUL_NONE = 0,
    MSR_EMUL_MTRR,          /* the guest's own MTRRs, checked as SDM Vol. 3A 13.11 says */
    MSR_EMUL_TSC,           /* IA32_TSC write: the guest's TSC moves, the host's does not (TSC offset) */
    MSR_EMUL_X2APIC_ICR,    /* INIT / SIPI emulated (apic_emul.h) */
    MSR_EMUL_APIC_BASE,     /* the xAPIC window may not move away from the trap (apic_emul.h) */
    MSR_EMUL_MISC_ENABLE,   /* the feature enables of the CPU the hypervisor runs on: a change is #GP */
};

struct msr_rule {
    u32 first, last;        /* inclusive */
    u8 read, write;         /* enum msr_action */
    u8 on;                  /* MSR_ON_* */
    u8 cond;                /* enum msr_cond */
    u8 emul;                /* enum msr_emul */
    const char *reason;
};

/* The facts about this CPU the table depends on (msr_policy_init fills them from CPUID). */
struct msr_cpu {
    u8 on;                  /* MSR_ON_VMX or MSR_ON_SVM */
    bool spec_ctrl;         /* IA32_SPEC_CTRL exists: CPUID.7.0:EDX[26] (Intel), 8000_0008:EBX[14] (AMD) */
    bool pred_cmd;          /* IA32_PRED_CMD exists: CPUID.7.0:EDX[26] (Intel), 8000_0008:EBX[12] (AMD) */
    bool mtrr;              /* CPUID.1:EDX.MTRR[12] */
    u8 phys_bits;           /* MAXPHYADDR */
};

extern const struct msr_rule msr_rules[];
extern const u32 msr_rule_count;

/* The rule for msr on this CPU: the first entry that covers it, or NULL (the default). */
const struct msr_rule *msr_policy_lookup(const struct msr_cpu *c, u32 msr);
/* The same by searching the table in order (the reference the native test checks the index against). */
const struct msr_rule *msr_policy_lookup_linear(const struct msr_cpu *c, u32 msr);
/* True once the lookup index is built and used (built on the first call). */
bool msr_policy_indexed(void);
/* The action for one direction, the default included (through a small cache of recent MSRs). */
enum msr_action msr_policy_action(const struct msr_cpu *c, u32 msr, bool write);
/* The same without the cache (the reference the native test checks the cache against). */
enum msr_action msr_policy_action_uncached(const struct msr_cpu *c, u32 msr, bool write);
/* The emulation of the rule that decides this MSR (MSR_EMUL_NONE without one), through the same cache. */
enum msr_emul msr_policy_emul(const struct msr_cpu *c, u32 msr);
/*
 * Calls pass(msr, write, ctx) for every MSR and direction the guest owns directly on this CPU; a
 * bitmap that intercepts everything and clears exactly these is the policy's bitmap.
 */
void msr_policy_for_each_pass(const struct msr_cpu *c, void (*pass)(u32 msr, bool write, void *ctx), void *ctx);

/*
 * MTRR writes checked as the SDM says (Vol. 3A 13.11.2, 13.11.2.3: reserved bits, memory types 0, 1,
 * 4, 5, 6 only, bits at or above MAXPHYADDR reserved; MTRRcap is read-only; a variable-range
 * index at or above MTRRcap.VCNT does not exist). True if the value is legal (hardware takes it).
 */
bool msr_mtrr_write_ok(u32 msr, u64 value, u64 mtrrcap, u8 phys_bits);
/* Does this MTRR MSR exist on a CPU with this MTRRcap (fixed ranges, VCNT)? */
bool msr_mtrr_exists(u32 msr, u64 mtrrcap);

/* Core's per-CPU facts, filled on first use from CPUID and the back end in use. */
const struct msr_cpu *msr_policy_cpu(void);

#endif
