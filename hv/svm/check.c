/*
 * Why VMRUN failed: VMRUN exits with VMEXIT_INVALID when the VMCB breaks one of the consistency rules
 * of AMD APM Vol. 2 15.5.1 "Basic Operation" (list under "VMRUN ... checks"). The hardware does not say
 * which; this re-checks them in APM order (control area first) and names the first one broken.
 */
#include <hv/exit_common.h>
#include <hv/svm/svm.h>
#include <hv/x86.h>

#define EFER_VALID (EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE | EFER_SVME | EFER_LMSLE | EFER_FFXSR | EFER_TCE)

const char *svm_vmcb_invalid_field(const struct vmcb *v)
{
    const struct vmcb_control *c = &v->control;
    const struct vmcb_save *s = &v->save;
    u64 max_pa = 1ull << cpu_phys_bits();

    if (!(c->intercept_misc2 & SVM_INTERCEPT2_VMRUN))
        return "control.intercept VMRUN clear (the VMRUN intercept is mandatory)";
    if (c->guest_asid == 0)
        return "control.guest_asid = 0 (ASID 0 is the host's)";
    if (c->msrpm_base + 0x2000 > max_pa || c->iopm_base + 0x3000 > max_pa)
        return "control.msrpm_base / iopm_base beyond the physical address width";
    if (c->event_inj & SVM_EVT_VALID) {
        u64 type = c->event_inj & (7ull << 8), vec = c->event_inj & 0xff;
        if (type == (1ull << 8) || type > SVM_EVT_TYPE_SOFT ||
            (type == SVM_EVT_TYPE_EXCEPT && (vec == 2 || vec > 31)))
            return "control.event_inj: illegal event type or vector";
    }
    if (!(s->efer & EFER_SVME))
        return "save.efer.SVME = 0 (EFER.SVME must be 1 in the guest)";
    if (s->efer & ~EFER_VALID)
        return "save.efer: reserved bits set";
    if ((s->cr0 & X86_CR0_NW) && !(s->cr0 & X86_CR0_CD))
        return "save.cr0: NW=1 with CD=0";
    if (s->cr0 >> 32)
        return "save.cr0[63:32] not zero";
    if ((s->efer & EFER_LMA) && s->cr3 >= max_pa)
        return "save.cr3: bits beyond the physical address width";
    if (s->cr4 & ~svm_caps.cr4_allowed)
        return "save.cr4: reserved bits set";
    if (s->dr6 >> 32)
        return "save.dr6[63:32] not zero";
    if (s->dr7 >> 32)
        return "save.dr7[63:32] not zero";
    if ((s->efer & EFER_LME) && (s->cr0 & X86_CR0_PG)) {
        if (!(s->cr4 & X86_CR4_PAE))
            return "save: EFER.LME=1 and CR0.PG=1 with CR4.PAE=0";
        if (!(s->cr0 & X86_CR0_PE))
            return "save: EFER.LME=1 and CR0.PG=1 with CR0.PE=0";
        if ((s->cs.attrib & VMCB_ATTR_L) && (s->cs.attrib & VMCB_ATTR_DB))
            return "save.cs: L=1 and D=1 in long mode";
    }
    return NULL;
}
