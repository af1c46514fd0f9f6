/*
 * SvmSetupVMCB + NptInit + VMRUN (the AMD mirror of vmx/vmcs.c). The guest is the current context:
 * svm_start (launch.S) saved the callee-saved registers and passes the RSP/RIP at which the guest
 * continues as if svm_start had returned 0 (blue pill). VMCB layout: AMD APM Vol. 2 Appendix B;
 * VMRUN's state handling and consistency checks: 15.5; intercepts: 15.7-15.15; nested paging: 15.25.
 */
#include <hv/cmdline.h>
#include <hv/apic_emul.h>
#include <hv/console.h>
#include <hv/guest.h>
#include <hv/io_policy.h>
#include <hv/msr_policy.h>
#include <hv/segments.h>
#include <hv/stage2.h>
#include <hv/svm/halt.h>
#include <hv/svm/svm.h>
#include <hv/x86.h>

extern struct stage2 svm_npt;

/* A segment in VMCB form (APM Vol. 2 Table B-2): attrib = descriptor bits 47:40 in 7:0, 55:52 in 11:8. */
static struct vmcb_seg vmcb_segment(const struct percpu *pc, int which)
{
    struct cpu_segment s = cpu_segment(pc, which);
    if (s.null)
        return (struct vmcb_seg){ .selector = s.selector, .base = s.base };
    return (struct vmcb_seg){ .selector = s.selector, .attrib = (u16)((s.attr & 0xff) | ((s.attr >> 12) << 8)),
                              .limit = s.limit, .base = s.base };
}

/* A read or write the guest owns: its bit cleared (two bits per MSR, read then write, APM 15.11). */
static void msrpm_pass(u32 msr, bool write, void *ctx)
{
    u8 *pm = ctx;
    u32 block;
    if (msr <= 0x1fff)
        block = 0;
    else if (msr - 0xc0000000 <= 0x1fff)
        block = 0x800;
    else if (msr - 0xc0010000 <= 0x1fff)
        block = 0x1000;
    else
        return;         /* outside the map: always intercepted by the CPU */
    u32 bit = (msr & 0x1fff) * 2 + (write ? 1 : 0);
    pm[block + bit / 8] &= (u8)~(1u << (bit % 8));
}

/*
 * Deny by default: every MSR access exits except those the shared policy table gives the guest
 * (msr_policy.h). EFER is the back end's (svm/vcpu.c): VMRUN requires EFER.SVME=1 in the guest
 * (APM 15.5.1), so the guest's EFER has it, and reads show SVME=0.
 */
static void setup_msrpm(u8 *pm)
{
    memset(pm, 0xff, 2 * PAGE_SIZE);
    msr_policy_for_each_pass(msr_policy_cpu(), msrpm_pass, pm);
}

/*
 * Negative tests (entry_fault=...): VMRUN must fail with VMEXIT_INVALID (APM 15.5.1) when the VMRUN
 * intercept is clear (control) or when the guest's EFER.SVME is clear (guest state).
 */
static void break_entry_on_request(const struct percpu *pc, struct vmcb *v)
{
    if (hv_options.entry_fault == ENTRY_FAULT_CONTROL) {
        printk("svm: CPU %u: entry_fault=control: clearing the VMRUN intercept\n", pc->index);
        v->control.intercept_misc2 &= ~SVM_INTERCEPT2_VMRUN;
    } else if (hv_options.entry_fault == ENTRY_FAULT_GUEST_STATE) {
        printk("svm: CPU %u: entry_fault=guest_state: clearing guest EFER.SVME\n", pc->index);
        v->save.efer &= ~EFER_SVME;
    }
}

/* Intercepts, permission maps, ASID and nested paging: the same for every kind of guest. */
static void setup_controls(struct percpu *pc, struct svm_cpu *s, struct vmcb *v, bool loaded_guest)
{
    /* Intercepts (APM 15.7-15.15). */
    /*
     * MOV to CR0/CR3/CR4 are traced for the self-test guest. A loaded OS writes CR3 natively (with NPT
     * nothing needs a shadow), but CR0 and CR4 under intercept: their architectural checks are then
     * the hypervisor's (exit_cr_write: NW without CD, PG without PE, the CR4 bits this CPU has), not an
     * emulator's. QEMU's TCG lets an SVM guest set NW without CD or a reserved CR4 bit instead of #GP
     * and then refuses the VMCB (VMEXIT_INVALID, APM 15.5.1): a guest could stop the run with one MOV.
     * write_cr() keeps EFER.LMA with CR0.PG (APM 14.6.1). A guest writes both rarely.
     */
    v->control.intercept_cr_write = loaded_guest ? (1u << 0) | (1u << 4) : (1u << 0) | (1u << 3) | (1u << 4);
    v->control.intercept_exceptions = 1u << 6;                              /* #UD: reflected, and traced */
    v->control.intercept_misc1 = SVM_INTERCEPT1_CPUID | SVM_INTERCEPT1_INVD | SVM_INTERCEPT1_MSR_PROT |
                                 SVM_INTERCEPT1_SHUTDOWN | SVM_INTERCEPT1_NMI |  /* NMIs: held, kicks (vcpu.h) */
                                 SVM_INTERCEPT1_SMI;                             /* SMIs: the firmware's, in host mode (exit.c) */
    svm_halt_reset(pc, s, v);                                                       /* HLT (halt.c) */
    /* The negative-test hook: RDPMC intercepted with no handler in the dispatch table (cmdline.h). */
    if (hv_options.unhandled_exit_test)
        v->control.intercept_misc1 |= SVM_INTERCEPT1_RDPMC;
    /* VMRUN's intercept is mandatory (15.5.1); the other SVM instructions are hidden: #UD. */
    v->control.intercept_misc2 = SVM_INTERCEPT2_VMRUN | SVM_INTERCEPT2_VMMCALL | SVM_INTERCEPT2_VMLOAD |
                                 SVM_INTERCEPT2_VMSAVE | SVM_INTERCEPT2_STGI | SVM_INTERCEPT2_CLGI |
                                 SVM_INTERCEPT2_SKINIT | SVM_INTERCEPT2_WBINVD | SVM_INTERCEPT2_XSETBV;
    setup_msrpm(s->msrpm);
    v->control.msrpm_base = (u64)s->msrpm;
    /* No I/O intercepts but a loaded guest's policy ports (io_policy.c), one IOPM bit per port (15.10.1). */
    if (loaded_guest && io_policy_fill(s->iopm))
        v->control.intercept_misc1 |= SVM_INTERCEPT1_IOIO;
    v->control.iopm_base = (u64)s->iopm;
    v->control.guest_asid = s->asid;
    v->control.tlb_control = SVM_TLB_FLUSH_ALL; /* nothing cached under this ASID may survive (15.16) */

    /* NptInit: the shared identity map (backend.c), host PAT for the nested walk, G_PAT for the guest. */
    v->control.np_enable = 1;
    v->control.n_cr3 = (u64)svm_npt.root;
}

int svm_setup_and_launch(struct percpu *pc, u64 guest_rsp, u64 guest_rip)
{
    struct svm_cpu *s = pc->vendor;
    struct vmcb *v = s->vmcb;
    setup_controls(pc, s, v, false);
    /* Guest state = this CPU now. */
    struct dtr gdtr, idtr;
    __asm__ volatile("sgdt %0; sidt %1" : "=m"(gdtr), "=m"(idtr));
    u64 rflags;
    __asm__ volatile("pushfq; popq %0" : "=r"(rflags));
    struct vmcb_seg *segs[8] = { &v->save.es, &v->save.cs, &v->save.ss, &v->save.ds,
                                 &v->save.fs, &v->save.gs, &v->save.ldtr, &v->save.tr };
    /* VMRUN does not load FS/GS/TR/LDTR (only VMLOAD does, 15.5.2): these record the guest's view. */
    for (int i = 0; i < SEG_COUNT; i++)
        *segs[i] = vmcb_segment(pc, i);
    v->save.gdtr = (struct vmcb_seg){ .limit = gdtr.limit, .base = gdtr.base };
    v->save.idtr = (struct vmcb_seg){ .limit = idtr.limit, .base = idtr.base };
    v->save.cpl = 0;
    v->save.efer = rdmsr(MSR_EFER);             /* SVME is set: required in the guest (15.5.1) */
    v->save.cr0 = read_cr0();
    v->save.cr2 = read_cr2();
    v->save.cr3 = read_cr3();
    v->save.cr4 = read_cr4();
    v->save.dr7 = X86_DR7_INIT;
    v->save.dr6 = X86_DR6_INIT;
    v->save.rflags = rflags;
    v->save.rip = guest_rip;
    v->save.rsp = guest_rsp;
    v->save.rax = 0;
    v->save.g_pat = rdmsr(MSR_IA32_PAT);
    v->save.star = rdmsr(0xc0000081);
    v->save.lstar = rdmsr(0xc0000082);
    v->save.cstar = rdmsr(0xc0000083);
    v->save.sfmask = rdmsr(0xc0000084);
    v->save.kernel_gs_base = rdmsr(0xc0000102);
    v->save.sysenter_cs = rdmsr(0x174);
    v->save.sysenter_esp = rdmsr(0x175);
    v->save.sysenter_eip = rdmsr(0x176);

    break_entry_on_request(pc, v);

    /* VMRUN: the loop runs on the VMM stack and never returns; the guest continues at guest_rip. */
    svm_vmrun_loop(s->host_stack_top, (u64)v, 0, NULL);   /* blue pill: host and guest share FS/GS/TR */
}

/*
 * A loaded guest's first state (APM 15.5: VMRUN takes any mode with NPT, real mode included): 32-bit
 * protected mode with paging off and the flat GUEST_SEL_* segments of the guest's GDT, or real mode at
 * a SIPI vector (CS = vector << 8, base vector << 12, IP 0, as INIT-SIPI leaves an AP, SDM Vol. 3A
 * 9.4.4 / APM 15.29). EFER.SVME stays set (15.5.1); the guest reads EFER without it (exit.c).
 */
static void guest_state_fresh(struct vmcb *v, const struct guest_start *gs)
{
    struct vmcb_seg code, data;
    if (gs->mode == GUEST_MODE_REAL) {
        code = (struct vmcb_seg){ .selector = (u16)(gs->sipi_vector << 8), .attrib = 0x09b, .limit = 0xffff,
                                  .base = (u64)gs->sipi_vector << 12 };
        data = (struct vmcb_seg){ .selector = 0, .attrib = 0x093, .limit = 0xffff, .base = 0 };
        v->save.cr0 = X86_CR0_ET;
        v->save.gdtr = (struct vmcb_seg){ .limit = 0xffff };
    } else {
        code = (struct vmcb_seg){ .selector = GUEST_SEL_CODE, .attrib = 0xc9b, .limit = 0xffffffff };
        data = (struct vmcb_seg){ .selector = GUEST_SEL_DATA, .attrib = 0xc93, .limit = 0xffffffff };
        v->save.cr0 = X86_CR0_PE | X86_CR0_ET;
        v->save.gdtr = (struct vmcb_seg){ .limit = 4 * 8 - 1, .base = GUEST_GDT };
    }
    v->save.cs = code;
    v->save.es = v->save.ss = v->save.ds = v->save.fs = v->save.gs = data;
    v->save.ldtr = (struct vmcb_seg){ .attrib = 0x082, .limit = 0xffff };
    v->save.tr = (struct vmcb_seg){ .attrib = 0x08b, .limit = 0xffff };
    v->save.idtr = (struct vmcb_seg){ .limit = 0xffff };
    v->save.cpl = 0;
    v->save.efer = EFER_SVME;
    v->save.cr2 = v->save.cr3 = v->save.cr4 = 0;
    v->save.dr7 = X86_DR7_INIT;
    v->save.dr6 = X86_DR6_INIT;
    v->save.rflags = 2;
    v->save.rip = gs->rip;
    v->save.rsp = gs->regs[4];
    v->save.rax = gs->regs[0];
    v->save.g_pat = 0x0007040600070406ull;     /* the PAT's power-on value (APM 7.8.2) */
    v->save.star = v->save.lstar = v->save.cstar = v->save.sfmask = v->save.kernel_gs_base = 0;
    v->save.sysenter_cs = v->save.sysenter_esp = v->save.sysenter_eip = 0;
}

int svm_start_guest(struct percpu *pc, const struct guest_start *gs)
{
    struct svm_cpu *s = pc->vendor;
    struct vmcb *v = s->vmcb;
    setup_controls(pc, s, v, true);
    guest_state_fresh(v, gs);
    s->lme_off_vmcb = false;
    svm_vmrun_loop(s->host_stack_top, (u64)v, (u64)s->host_vmcb, gs->regs);
}
