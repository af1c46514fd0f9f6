/*
 * The run-time side of the MSR policy (msr_policy.h): the CPU facts the table depends on, and the
 * MSRs the table says are emulated (MSR_EMUL). Every MSR the hypervisor executes on the guest's
 * behalf runs under a fault fixup (fixup.h): a #GP the CPU raises is reflected to the guest.
 */
#include <hv/abi.h>
#include <hv/apic_emul.h>
#include <hv/console.h>
#include <hv/backend.h>
#include <hv/exit_common.h>
#include <hv/fixup.h>
#include <hv/msr_emul.h>
#include <hv/msr_policy.h>
#include <hv/mtrr.h>
#include <hv/stage2.h>
#include <hv/x86.h>

#define CPUID_1_EDX_MTRR          (1u << 12)
#define CPUID_7_EDX_IBRS_IBPB     (1u << 26)    /* SPEC_CTRL and PRED_CMD (SDM Vol. 4 Table 2-2) */
#define CPUID_80000008_EBX_IBPB   (1u << 12)    /* AMD: PRED_CMD (APM Vol. 3 E.4.7) */
#define CPUID_80000008_EBX_IBRS   (1u << 14)    /* AMD: SPEC_CTRL */
#define MSR_MISC_ENABLE           0x1a0

const struct msr_cpu *msr_policy_cpu(void)
{
    static struct msr_cpu c;
    if (!c.on) {
        u32 a, b, cx, d, max, xmax;
        cpuid(0, 0, &max, &b, &cx, &d);
        cpuid(0x80000000, 0, &xmax, &b, &cx, &d);
        cpuid(1, 0, &a, &b, &cx, &d);
        c.mtrr = (d & CPUID_1_EDX_MTRR) != 0;
        if (max >= 7) {
            cpuid(7, 0, &a, &b, &cx, &d);
            c.spec_ctrl = c.pred_cmd = (d & CPUID_7_EDX_IBRS_IBPB) != 0;
        }
        if (xmax >= 0x80000008) {
            cpuid(0x80000008, 0, &a, &b, &cx, &d);
            c.spec_ctrl |= (b & CPUID_80000008_EBX_IBRS) != 0;
            c.pred_cmd |= (b & CPUID_80000008_EBX_IBPB) != 0;
        }
        c.phys_bits = (u8)cpu_phys_bits();
        c.on = virt_backend && virt_backend->vendor == HV_VENDOR_SVM ? MSR_ON_SVM : MSR_ON_VMX;
    }
    return &c;
}

/*
 * Each CPU's MTRRs as its guest sees them: a copy of the real ones (the firmware's, the same on every
 * CPU after mtrr_sync) taken at the first access, then the guest's own writes. INIT leaves MTRRs as
 * they are (SDM Vol. 3A 10.1.1, Table 10-1), so the copy lives as long as the run.
 * The copy feeds the stage-2 memory types (mtrr_apply): with EPT the CPU takes the EPT memory type
 * where it would take the MTRR type (SDM Vol. 3C 29.3.7.2), and the NPT leaf's type combines with the
 * guest PAT the same way (APM Vol. 2 15.25.8), so the guest's MTRRs reach the hardware only that way.
 */
static struct mtrr_state vmtrr[HV_MAX_CPUS];
static bool vmtrr_valid[HV_MAX_CPUS];

static u64 *mtrr_slot(struct mtrr_state *st, u32 msr)
{
    if (msr == MSR_MTRRCAP)
        return &st->cap;
    if (msr == MSR_MTRR_DEF_TYPE)
        return &st->def_type;
    if (msr == MSR_MTRR_FIX64K)
        return &st->fixed[0];
    if (msr == MSR_MTRR_FIX16K_80 || msr == MSR_MTRR_FIX16K_A0)
        return &st->fixed[1 + msr - MSR_MTRR_FIX16K_80];
    if (msr >= MSR_MTRR_FIX4K(0) && msr <= MSR_MTRR_FIX4K(7))
        return &st->fixed[3 + msr - MSR_MTRR_FIX4K(0)];
    u32 n = (msr - MSR_MTRR_PHYSBASE(0)) / 2;
    if (msr >= MSR_MTRR_PHYSBASE(0) && n < st->var_count)
        return msr & 1 ? &st->var[n].mask : &st->var[n].base;
    return 0;
}

/* Bumped after a retype; every CPU flushes its cached stage-2 translations when it sees a new value. */

/*
 * Retype the stage-2 map after a guest MTRR write, while the guest's MTRRs are enabled. The MP update
 * protocol (SDM Vol. 3A 13.11.8) runs on every CPU with E clear until its last write sets it again,
 * so the map follows the last CPU to finish; with E clear the map keeps its types (caching is off
 * then anyway: the protocol runs with CR0.CD = 1).
 */
static void mtrr_apply(struct vcpu *v, const struct mtrr_state *st)
{
    if (!mtrr_enabled(st) || !virt_backend || !virt_backend->stage2)
        return;
    u64 changed = stage2_retype(virt_backend->stage2, &hv_memmap, st);
    if (!changed)
        return;
    for (u32 i = 0; i < cpu_count; i++)
        if (cpus[i])
            __atomic_store_n(&cpus[i]->stage2_stale, 1, __ATOMIC_SEQ_CST);
    printk("stage2: cpu %u: guest MTRRs retyped %lu leaves\n", v->pc->index, changed);
    msr_emul_stage2_sync(v);
}

static bool mtrr_access(struct vcpu *v, u32 msr, bool write, u64 *value)
{
    struct percpu *pc = v->pc;
    struct mtrr_state *st = &vmtrr[pc->index];
    if (!vmtrr_valid[pc->index]) {
        mtrr_read(st);
        vmtrr_valid[pc->index] = true;
    }
    u64 *slot = msr_mtrr_exists(msr, st->cap) ? mtrr_slot(st, msr) : 0;
    if (!slot)
        return false;                       /* not on this CPU (index >= VCNT, no fixed ranges): #GP */
    if (!write) {
        *value = *slot;
        return true;
    }
    if (!msr_mtrr_write_ok(msr, *value, st->cap, st->phys_bits))
        return false;                       /* reserved bits or an invalid type: #GP, as the CPU does */
    if (*slot != *value) {
        *slot = *value;
        mtrr_apply(v, st);
    }
    return true;
}

bool msr_emul_read(struct vcpu *v, u32 msr, u64 *value)
{
    enum msr_emul emul = msr_policy_emul(msr_policy_cpu(), msr);
    if (emul == MSR_EMUL_MTRR)
        return mtrr_access(v, msr, false, value);
    if (emul == MSR_EMUL_APIC_BASE) {
        *value = apic_emul_apic_base_read(v->pc);
        return true;
    }
    return !safe_rdmsr(msr, value);         /* the others emulate writes only */
}

bool msr_emul_write(struct vcpu *v, u32 msr, u64 value)
{
    u64 now;
    switch (msr_policy_emul(msr_policy_cpu(), msr)) {
    case MSR_EMUL_MTRR:
        return mtrr_access(v, msr, true, &value);
    case MSR_EMUL_TSC:
        /* Guest TSC = host TSC + offset (SDM Vol. 3C 27.3 TSC offsetting, APM 15.30.5 TSC_OFFSET). */
        return v->ops->set_tsc_offset && v->ops->set_tsc_offset(v, value - rdtsc());
    case MSR_EMUL_X2APIC_ICR:
        return apic_emul_x2apic_icr(v, value);
    case MSR_EMUL_APIC_BASE:
        return apic_emul_apic_base_write(v->pc, value);
    case MSR_EMUL_MISC_ENABLE:
        /* Rewriting the value it has is harmless (Linux's read-modify-write of a bit that is set). */
        return !safe_rdmsr(MSR_MISC_ENABLE, &now) && now == value;
    default:
        return false;
    }
}
