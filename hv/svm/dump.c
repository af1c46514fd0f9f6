/*
 * VMCB dump for fatal paths (KVM dump_vmcb() style, grouped by area): the control fields that matter
 * with the intercepts hvtrace sets, then the guest state VMRUN loads. AMD APM Vol. 2 Appendix B.
 */
#include <hv/console.h>
#include <hv/svm/svm.h>

static void seg(const char *name, const struct vmcb_seg *s)
{
    printk("  %-4s sel=0x%04x attr=0x%04x limit=0x%08x base=0x%lx\n", name, s->selector, s->attrib, s->limit, s->base);
}

void svm_dump_vmcb(const struct vmcb *v)
{
    const struct vmcb_control *c = &v->control;
    const struct vmcb_save *s = &v->save;
    printk("VMCB control area @0x%lx:\n", (u64)v);
    printk("  intercepts: cr_read=0x%04x cr_write=0x%04x dr_read=0x%04x dr_write=0x%04x excp=0x%08x\n",
           c->intercept_cr_read, c->intercept_cr_write, c->intercept_dr_read, c->intercept_dr_write,
           c->intercept_exceptions);
    printk("  intercepts: misc1=0x%08x misc2=0x%08x misc3=0x%08x\n", c->intercept_misc1, c->intercept_misc2,
           c->intercept_misc3);
    printk("  iopm_base=0x%lx msrpm_base=0x%lx tsc_offset=0x%lx asid=%u tlb_control=%u\n", c->iopm_base,
           c->msrpm_base, c->tsc_offset, c->guest_asid, c->tlb_control);
    printk("  vintr=0x%lx int_shadow=0x%lx np_enable=0x%lx n_cr3=0x%lx\n", c->vintr, c->interrupt_shadow,
           c->np_enable, c->n_cr3);
    printk("  exitcode=0x%lx (%s) exitinfo1=0x%lx exitinfo2=0x%lx exitintinfo=0x%lx\n", c->exitcode,
           svm_exit_name(c->exitcode), c->exitinfo1, c->exitinfo2, c->exitintinfo);
    printk("  event_inj=0x%lx next_rip=0x%lx insn_len=%u\n", c->event_inj, c->next_rip, c->insn_len);
    printk("VMCB save area:\n");
    seg("ES", &s->es);
    seg("CS", &s->cs);
    seg("SS", &s->ss);
    seg("DS", &s->ds);
    seg("GDTR", &s->gdtr);
    seg("IDTR", &s->idtr);
    printk("  cpl=%u efer=0x%lx cr0=0x%lx cr2=0x%lx cr3=0x%lx cr4=0x%lx\n", s->cpl, s->efer, s->cr0, s->cr2,
           s->cr3, s->cr4);
    printk("  rip=0x%lx rsp=0x%lx rax=0x%lx rflags=0x%lx dr6=0x%lx dr7=0x%lx g_pat=0x%lx\n", s->rip, s->rsp,
           s->rax, s->rflags, s->dr6, s->dr7, s->g_pat);
}
