/*
 * VmxSetupVMCS + EptInit + VmxLaunch (the seed's steps, docs/walkthrough.md steps 8-10). The guest is the current context: vmx_start
 * (launch.S) saved the callee-saved registers and passes the RSP/RIP at which the guest continues as
 * if vmx_start had returned 0 (blue pill). Guest state rules: SDM Vol. 3C 28.3.1; host state 28.2.3;
 * controls 26.6-26.8.
 */
#include <hv/abi.h>
#include <hv/apic_emul.h>
#include <hv/cmdline.h>
#include <hv/console.h>
#include <hv/fixup.h>
#include <hv/guest.h>
#include <hv/io_policy.h>
#include <hv/msr_policy.h>
#include <hv/segments.h>
#include <hv/timer.h>
#include <hv/vmx/ept.h>
#include <hv/vmx/halt.h>


#include <hv/vmx/vmcs.h>
#include <hv/vmx/vmx.h>
#include <hv/x86.h>

extern void vmx_exit_stub(void);
void vmx_launch_fresh(const u64 *regs);
extern struct stage2 vmx_ept;


/* Guest segment state, ES..TR in VMCS encoding order (each kind of field is 2 apart). */
static bool write_guest_segments(const struct percpu *pc)
{
    bool ok = true;
    for (int i = 0; i < SEG_COUNT; i++) {
        struct cpu_segment s = cpu_segment(pc, i);
        /*
         * Access rights (SDM Vol. 3C 25.4.1, Table 25-2): a null selector is "unusable" (bit 16); code
         * and data must be marked accessed for VM entry (27.3.1.2).
         */
        u32 ar = s.null ? 1u << 16 : s.attr | (s.system ? 0 : 1);
        ok &= vmwrite(GUEST_ES_SELECTOR + 2 * i, s.selector);
        ok &= vmwrite(GUEST_ES_BASE + 2 * i, s.base);
        ok &= vmwrite(GUEST_ES_LIMIT + 2 * i, s.limit);
        ok &= vmwrite(GUEST_ES_AR_BYTES + 2 * i, ar);
    }
    return ok;
}

/* A read or write the guest owns: its bit in the 4 KiB bitmap cleared (no exit). */
static void msr_bitmap_pass(u32 msr, bool write, void *ctx)
{
    /* Read-low, read-high, write-low, write-high, 1 KiB each (SDM Vol. 3C 26.6.9). */
    u8 *bitmap = ctx;
    u32 base = (write ? 2048 : 0) + (msr >= 0xc0000000 ? 1024 : 0), bit = msr & 0x1fff;
    bitmap[base + bit / 8] &= (u8)~(1u << (bit % 8));
}

/*
 * Deny by default: every MSR access exits except those the shared policy table gives the guest
 * (msr_policy.h); MSRs outside the bitmap's two ranges always exit (26.6.9).
 */
static void setup_msr_bitmap(u8 *bitmap)
{
    memset(bitmap, 0xff, PAGE_SIZE);
    msr_policy_for_each_pass(msr_policy_cpu(), msr_bitmap_pass, bitmap);
}

/*
 * Negative tests (entry_fault=...): a secondary control whose allowed-1 bit is 0 must make VMLAUNCH
 * fail with VM-instruction error 7 (SDM Vol. 3C 28.2.1.1); RFLAGS bit 1 clear must fail the guest-state
 * checks, a VM-entry failure with exit reason 33 (28.3.1.4).
 */
static void break_entry_on_request(const struct percpu *pc)
{
    if (hv_options.entry_fault == ENTRY_FAULT_CONTROL) {
        u32 forbidden = ~(u32)(rdmsr(MSR_IA32_VMX_PROCBASED_CTLS2) >> 32);
        u32 bit = forbidden ? forbidden & -forbidden : 0;
        printk("vmx: CPU %u: entry_fault=control: setting secondary control bit 0x%x the CPU does not allow\n",
               pc->index, bit);
        vmwrite(SECONDARY_VM_EXEC_CONTROL, vmx_caps.cpu2 | bit);
    } else if (hv_options.entry_fault == ENTRY_FAULT_GUEST_STATE) {
        printk("vmx: CPU %u: entry_fault=guest_state: clearing guest RFLAGS bit 1\n", pc->index);
        vmwrite(GUEST_RFLAGS, vmread(GUEST_RFLAGS) & ~2ull);
    }
}

/* VMCLEAR + VMPTRLD this CPU's VMCS region. */
static bool vmcs_load(struct percpu *pc)
{
    struct vmx_cpu *v = pc->vendor;
    u64 pa = (u64)v->vmcs_region;
    bool fail;
    /* Not active (a restart after INIT reloads it): the region may be written now (25.11.1). */
    __asm__ volatile("vmclear %1; setbe %0" : "=qm"(fail) : "m"(pa) : "cc", "memory");
    /*
     * Poisoned, not zeroed: the data format of the region is implementation-specific (SDM Vol. 3C
     * 25.2, 25.11.3) and an emulator may keep the fields there as they are (Bochs does). A field the
     * enabled controls consult that the setup below forgets is then garbage that fails the VM-entry
     * checks, never a zero that happens to work. The revision identifier and the VMX-abort indicator
     * (bytes 0-7, Table 25-1) are the only bytes software defines.
     */
    memset((u8 *)v->vmcs_region + 8, 0xff, PAGE_SIZE - 8);
    *(u32 *)v->vmcs_region = vmx_caps.revision_id;
    *((u32 *)v->vmcs_region + 1) = 0;
    __asm__ volatile("vmclear %1; setbe %0" : "=qm"(fail) : "m"(pa) : "cc", "memory");
    if (fail) {
        printk("vmx: CPU %u: VMCLEAR failed\n", pc->index);
        return false;
    }
    __asm__ volatile("vmptrld %1; setbe %0" : "=qm"(fail) : "m"(pa) : "cc", "memory");
    if (fail) {
        printk("vmx: CPU %u: VMPTRLD failed\n", pc->index);
        return false;
    }
    return true;
}

/*
 * The VMX-preemption timer's period (gdbstub=1): about 10 ms. It counts down at the TSC's rate divided
 * by 2^IA32_VMX_MISC[4:0] (SDM Vol. 3C 26.5.1), restarts from this value at every VM entry (the "save
 * VMX-preemption timer value" exit control stays off), so a guest that exits often never sees it fire.
 */
static u32 vmx_preemption_ticks(void)
{
    u64 ticks = (tsc_khz() * 10) >> (rdmsr(MSR_IA32_VMX_MISC) & 0x1f);
    return ticks > 0xffffffffull ? 0xffffffffu : ticks ? (u32)ticks : 1;
}

/* Execution controls, EPT, the CR masks and the host state: the same for every kind of guest. */
static bool vmcs_controls_and_host(struct percpu *pc)
{
    struct vmx_cpu *v = pc->vendor;
    const struct vmx_caps *c = &vmx_caps;
    bool ok = true;
    struct dtr gdtr, idtr;
    __asm__ volatile("sgdt %0; sidt %1" : "=m"(gdtr), "=m"(idtr));

    /* Controls. */
    ok &= vmwrite(PIN_BASED_VM_EXEC_CONTROL, c->pin);     /* external interrupts exit only while halted */
    vmx_halt_reset(v);
    ok &= vmwrite(CPU_BASED_VM_EXEC_CONTROL, c->cpu);
    ok &= vmwrite(SECONDARY_VM_EXEC_CONTROL, c->cpu2);
    ok &= vmwrite(VM_EXIT_CONTROLS, c->exit);
    ok &= vmwrite(VM_ENTRY_CONTROLS, c->entry);
    ok &= vmwrite(EXCEPTION_BITMAP, 1u << 6);       /* #UD: reflected, and traced */
    if (c->pin & PIN_PREEMPTION_TIMER)
        ok &= vmwrite(VMX_PREEMPTION_TIMER_VALUE, vmx_preemption_ticks());
    ok &= vmwrite(CR3_TARGET_COUNT, 0);
    /*
     * Every field the enabled controls consult is written: VMCLEAR does not zero the region's data
     * (SDM Vol. 3C 25.11.3: its format is implementation-specific), so nothing may be left to it.
     * No MSRs are switched through the MSR areas (the VMCS fields do it, 26.7.2, 26.8.2): counts 0.
     */
    ok &= vmwrite(VM_EXIT_MSR_STORE_COUNT, 0);
    ok &= vmwrite(VM_EXIT_MSR_LOAD_COUNT, 0);
    ok &= vmwrite(VM_ENTRY_MSR_LOAD_COUNT, 0);
    /* No event to inject at launch (26.8.3); the error code and length only matter with one. */
    ok &= vmwrite(VM_ENTRY_INTR_INFO, 0);
    ok &= vmwrite(VM_ENTRY_EXCEPTION_ERROR_CODE, 0);
    ok &= vmwrite(VM_ENTRY_INSTRUCTION_LEN, 0);
    /* #PF is not in the exception bitmap; mask = match = 0 keeps that meaning if it ever is (26.2). */
    ok &= vmwrite(PAGE_FAULT_ERROR_CODE_MASK, 0);
    ok &= vmwrite(PAGE_FAULT_ERROR_CODE_MATCH, 0);
    /* TSC offsetting (26.6.5): the guest's TSC is the host's until it writes IA32_TSC (msr_emul.c). */
    if (c->cpu & CPU_USE_TSC_OFFSETTING)
        ok &= vmwrite(TSC_OFFSET, 0);
    /* XSAVES/XRSTORS enabled: the XSS-exiting bitmap is consulted (26.6.20); 0: no exits. */
    if (c->cpu2 & CPU2_ENABLE_XSAVES)
        ok &= vmwrite(XSS_EXIT_BITMAP, 0);
    setup_msr_bitmap(v->msr_bitmap);
    ok &= vmwrite(MSR_BITMAP, (u64)v->msr_bitmap);
    ok &= vmwrite(IO_BITMAP_A, (u64)v->io_bitmap);      /* all zero: no I/O exits unless a port is set */
    ok &= vmwrite(IO_BITMAP_B, (u64)v->io_bitmap + PAGE_SIZE);
    ok &= vmwrite(VIRTUAL_PROCESSOR_ID, v->vpid);

    ok &= vmwrite(EPT_POINTER, ept_eptp((u64)vmx_ept.root, false));   /* EptInit */
    ok &= vmwrite(VMCS_LINK_POINTER, ~0ull);

    /*
     * CR0/CR4 guest/host masks: bits VMX fixes are owned by the hypervisor and shown to the guest as it
     * last wrote them (read shadows). CR4.VMXE is hidden: the guest sees 0 and may not set it.
     */
    u64 cr0 = read_cr0(), cr4 = read_cr4();   /* the host's; a fresh guest rewrites the shadows */
    u64 cr0_mask = c->cr0_fixed0 | ~c->cr0_fixed1;
    if (c->cpu2 & CPU2_UNRESTRICTED_GUEST)
        cr0_mask &= ~(1ull | (1ull << 31));            /* PE and PG are the guest's own (26.6.2) */
    ok &= vmwrite(CR0_GUEST_HOST_MASK, cr0_mask);
    ok &= vmwrite(CR0_READ_SHADOW, cr0);
    ok &= vmwrite(CR4_GUEST_HOST_MASK, c->cr4_fixed0 | ~c->cr4_fixed1);
    ok &= vmwrite(CR4_READ_SHADOW, cr4 & ~X86_CR4_VMXE);

    /* Host state: the same tables, the exit stub on this CPU's VMM stack (16-byte aligned). */
    ok &= vmwrite(HOST_CR0, cr0);
    ok &= vmwrite(HOST_CR3, read_cr3());
    ok &= vmwrite(HOST_CR4, cr4);
    ok &= vmwrite(HOST_CS_SELECTOR, GDT_CODE64);
    ok &= vmwrite(HOST_SS_SELECTOR, GDT_DATA);
    ok &= vmwrite(HOST_DS_SELECTOR, GDT_DATA);
    ok &= vmwrite(HOST_ES_SELECTOR, GDT_DATA);
    ok &= vmwrite(HOST_FS_SELECTOR, 0);
    ok &= vmwrite(HOST_GS_SELECTOR, 0);
    ok &= vmwrite(HOST_TR_SELECTOR, GDT_TSS);
    ok &= vmwrite(HOST_FS_BASE, 0);
    ok &= vmwrite(HOST_GS_BASE, (u64)pc);
    ok &= vmwrite(HOST_TR_BASE, (u64)&pc->tss);
    ok &= vmwrite(HOST_GDTR_BASE, gdtr.base);
    ok &= vmwrite(HOST_IDTR_BASE, idtr.base);
    ok &= vmwrite(HOST_IA32_PAT, rdmsr(MSR_IA32_PAT));
    ok &= vmwrite(HOST_IA32_EFER, rdmsr(MSR_EFER));
    ok &= vmwrite(HOST_IA32_SYSENTER_CS, 0);
    ok &= vmwrite(HOST_IA32_SYSENTER_ESP, 0);
    ok &= vmwrite(HOST_IA32_SYSENTER_EIP, 0);
    ok &= vmwrite(HOST_RSP, ALIGN_DOWN(v->host_stack_top, 16));
    ok &= vmwrite(HOST_RIP, (u64)vmx_exit_stub);
    return ok;
}

static bool vmcs_report(const struct percpu *pc, bool ok)
{
    if (!ok)
        printk("vmx: CPU %u: a VMWRITE failed: VM-instruction error %lu (%s)\n", pc->index,
               vmread(VM_INSTRUCTION_ERROR), vmx_instruction_error_name((u32)vmread(VM_INSTRUCTION_ERROR)));
    return ok;
}

static int launch_failed(struct percpu *pc)
{
    u32 err = (u32)vmread(VM_INSTRUCTION_ERROR);
    vmx_snapshot(pc, HV_SNAP_FATAL);
    printk("vmx: CPU %u: VMLAUNCH failed: VM-instruction error %u (%s)\n", pc->index, err,
           vmx_instruction_error_name(err));
    return err ? (int)err : -1;
}

int vmx_setup_and_launch(struct percpu *pc, u64 guest_rsp, u64 guest_rip)
{
    if (!vmcs_load(pc) || !vmcs_report(pc, vmcs_controls_and_host(pc)))
        return -1;
    bool ok = true;
    u64 cr0 = read_cr0(), cr4 = read_cr4();
    /* Guest state = this CPU now. */
    struct dtr gdtr, idtr;
    __asm__ volatile("sgdt %0; sidt %1" : "=m"(gdtr), "=m"(idtr));
    u64 rflags;
    __asm__ volatile("pushfq; popq %0" : "=r"(rflags));
    ok &= vmwrite(GUEST_CR0, cr0);
    ok &= vmwrite(GUEST_CR3, read_cr3());
    ok &= vmwrite(GUEST_CR4, cr4);
    ok &= vmwrite(GUEST_DR7, X86_DR7_INIT);
    ok &= vmwrite(GUEST_RSP, guest_rsp);
    ok &= vmwrite(GUEST_RIP, guest_rip);
    ok &= vmwrite(GUEST_RFLAGS, rflags);
    ok &= write_guest_segments(pc);
    ok &= vmwrite(GUEST_GDTR_BASE, gdtr.base);
    ok &= vmwrite(GUEST_GDTR_LIMIT, gdtr.limit);
    ok &= vmwrite(GUEST_IDTR_BASE, idtr.base);
    ok &= vmwrite(GUEST_IDTR_LIMIT, idtr.limit);
    u64 debugctl = 0;
    safe_rdmsr(MSR_IA32_DEBUGCTL, &debugctl);   /* absent on some models (Bochs): then 0 */
    ok &= vmwrite(GUEST_IA32_DEBUGCTL, debugctl);
    ok &= vmwrite(GUEST_IA32_PAT, rdmsr(MSR_IA32_PAT));
    ok &= vmwrite(GUEST_IA32_EFER, rdmsr(MSR_EFER));
    ok &= vmwrite(GUEST_SYSENTER_CS, rdmsr(MSR_IA32_SYSENTER_CS));
    ok &= vmwrite(GUEST_SYSENTER_ESP, rdmsr(MSR_IA32_SYSENTER_ESP));
    ok &= vmwrite(GUEST_SYSENTER_EIP, rdmsr(MSR_IA32_SYSENTER_EIP));
    ok &= vmwrite(GUEST_ACTIVITY_STATE, 0);
    ok &= vmwrite(GUEST_INTERRUPTIBILITY_INFO, 0);
    ok &= vmwrite(GUEST_PENDING_DBG_EXCEPTIONS, 0);

    if (!vmcs_report(pc, ok))
        return -1;

    break_entry_on_request(pc);

    /* VMLAUNCH: on success execution continues in the guest at guest_rip and never comes back here. */
    bool fail;
    __asm__ volatile("vmlaunch; setbe %0" : "=qm"(fail) : : "cc", "memory");
    (void)fail;
    return launch_failed(pc);
}

/*
 * A loaded guest's first state (SDM Vol. 3C 28.3.1 checks; unrestricted guest, 26.6.2, lets CR0.PE and
 * PG be 0): 32-bit protected mode with paging off and the flat GUEST_SEL_* segments of the guest's GDT,
 * or real mode at a SIPI vector (CS = vector << 8, base vector << 12, IP 0: SDM Vol. 3A 9.4.4). The
 * guest sees CR0/CR4 as it set them (read shadows); VMX's fixed bits stay set underneath.
 */
static bool vmcs_guest_fresh(const struct guest_start *gs)
{
    const struct vmx_caps *c = &vmx_caps;
    bool ok = true;
    bool real = gs->mode == GUEST_MODE_REAL;
    u64 cr0 = real ? X86_CR0_ET : X86_CR0_PE | X86_CR0_ET;
    u64 fixed0 = c->cr0_fixed0 & ~(X86_CR0_PE | X86_CR0_PG);
    ok &= vmwrite(CR0_READ_SHADOW, cr0);
    ok &= vmwrite(GUEST_CR0, (cr0 | fixed0) & c->cr0_fixed1);
    ok &= vmwrite(CR4_READ_SHADOW, 0);
    ok &= vmwrite(GUEST_CR4, c->cr4_fixed0);
    ok &= vmwrite(GUEST_CR3, 0);
    ok &= vmwrite(VM_ENTRY_CONTROLS, c->entry & ~ENTRY_IA32E_MODE_GUEST);
    ok &= vmwrite(GUEST_IA32_EFER, 0);
    ok &= vmwrite(GUEST_IA32_PAT, 0x0007040600070406ull);     /* the PAT's power-on value (SDM Vol. 3A 13.12.4) */
    ok &= vmwrite(GUEST_IA32_DEBUGCTL, 0);
    ok &= vmwrite(GUEST_SYSENTER_CS, 0);
    ok &= vmwrite(GUEST_SYSENTER_ESP, 0);
    ok &= vmwrite(GUEST_SYSENTER_EIP, 0);
    ok &= vmwrite(GUEST_DR7, X86_DR7_INIT);
    ok &= vmwrite(GUEST_RSP, gs->regs[4]);
    ok &= vmwrite(GUEST_RIP, gs->rip);
    ok &= vmwrite(GUEST_RFLAGS, 2);
    /* Access rights (Table 25-2): code 0x9b / data 0x93 (accessed), 4 KiB granular 32-bit when flat. */
    u32 code_ar = real ? 0x9b : 0xc09b, data_ar = real ? 0x93 : 0xc093;
    u32 limit = real ? 0xffff : 0xffffffff;
    for (int i = 0; i < SEG_COUNT; i++) {
        u16 sel = 0;
        u64 base = 0;
        u32 ar = data_ar, lim = limit;
        if (i == SEG_CS) {
            sel = real ? (u16)(gs->sipi_vector << 8) : GUEST_SEL_CODE;
            base = real ? (u64)gs->sipi_vector << 12 : 0;
            ar = code_ar;
        } else if (i == SEG_LDTR) {
            ar = 1u << 16;      /* unusable */
        } else if (i == SEG_TR) {
            ar = 0x8b;          /* busy 32-bit TSS: TR must be usable (28.3.1.2) */
            lim = 0xffff;
        } else if (!real) {
            sel = GUEST_SEL_DATA;
        }
        ok &= vmwrite(GUEST_ES_SELECTOR + 2 * i, sel);
        ok &= vmwrite(GUEST_ES_BASE + 2 * i, base);
        ok &= vmwrite(GUEST_ES_LIMIT + 2 * i, lim);
        ok &= vmwrite(GUEST_ES_AR_BYTES + 2 * i, ar);
    }
    ok &= vmwrite(GUEST_GDTR_BASE, real ? 0 : GUEST_GDT);
    ok &= vmwrite(GUEST_GDTR_LIMIT, real ? 0xffff : 4 * 8 - 1);
    ok &= vmwrite(GUEST_IDTR_BASE, 0);
    ok &= vmwrite(GUEST_IDTR_LIMIT, 0xffff);
    ok &= vmwrite(GUEST_ACTIVITY_STATE, 0);
    ok &= vmwrite(GUEST_INTERRUPTIBILITY_INFO, 0);
    ok &= vmwrite(GUEST_PENDING_DBG_EXCEPTIONS, 0);
    return ok;
}

int vmx_start_guest(struct percpu *pc, const struct guest_start *gs)
{
    /* A loaded guest's intercepted ports (io_policy.c): I/O bitmaps A and B are contiguous (25.6.4). */
    io_policy_fill(((struct vmx_cpu *)pc->vendor)->io_bitmap);
    if (!(vmx_caps.cpu2 & CPU2_UNRESTRICTED_GUEST)) {
        printk("vmx: CPU %u: a loaded guest starts with paging off: needs 'unrestricted guest', which this "
               "CPU lacks\n", pc->index);
        return -1;
    }
    if (!vmcs_load(pc) || !vmcs_report(pc, vmcs_controls_and_host(pc)) || !vmcs_report(pc, vmcs_guest_fresh(gs)))
        return -1;
    vmx_launch_fresh(gs->regs);     /* returns only if VMLAUNCH failed */
    return launch_failed(pc);
}
