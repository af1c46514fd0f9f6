/*
 * The guest's HLT state across the hypervisor's own exits (VT-x). The hypervisor NMI-kicks CPUs for
 * itself (vcpu.h: an xAPIC step's hold of the other CPUs, INIT to a running CPU, a gdb stop). An exit
 * taken in the HLT state should save HLT in the guest activity state (SDM Vol. 3C 28.3.4 "Saving
 * Non-Register State"; the states: 25.4.2, Table 25-3) and the next VM entry halts again (27.7.2
 * "Activity State"). Bochs 2.7 does not: its HLT loop ends the HLT first when the NMI arrives
 * (handleWaitForEvent sets the activity state to active) and only then takes the NMI's VM exit, which
 * saves "active". The guest then runs on after its HLT with no event it can see, and a guest that halts
 * until its NMI comes (memtest86+'s barrier `lock decl; je 0f; hlt`) runs on too early.
 *
 * So the hypervisor keeps the HLT state itself. HLT exiting is on (25.6.2, Table 25-6). At the HLT exit
 * the HLT is stepped over and the guest is entered in the HLT activity state: the architectural way
 * to put a guest in HLT (VM entry may load it where IA32_VMX_MISC bit 6 says so, Appendix A.6), and
 * what Bochs 2.7 implements (VMenterLoadCheckGuestState checks the state, then enter_sleep_state).
 * Running the guest's HLT for real, as svm/halt.c must (SVM saves no activity state), would need the
 * same bookkeeping plus a RIP moved back and an interrupt shadow, for nothing.
 *
 * The entry checks on the HLT state (27.3.1.5) hold: SS.DPL is 0 (HLT exits only at CPL 0: at CPL > 0
 * its #GP comes before the exit, 26.1.1; real mode under "unrestricted guest" has SS.DPL 0, 27.3.1.2);
 * no blocking by STI or MOV SS (stepping over the HLT ends it, vcpu.c advance); no event is injected
 * into the HLT state (an event ends the halt first, below).
 *
 * What ends the halt is what ends HLT on hardware (SDM Vol. 2A HLT: an interrupt, NMI, SMI, INIT or
 * RESET), and each is an exit the hypervisor sees:
 * - an interrupt: external-interrupt exiting is on while the guest halts with RFLAGS.IF = 1 (25.6.1,
 *   Table 25-5), without "acknowledge interrupt on exit" (25.7.1), so the interrupt stays pending in
 *   the APIC or PIC and the guest takes it at the next entry, the RIP after the HLT on its stack. With
 *   IF = 0 an interrupt does not end HLT; the exiting stays off then, since with it on an interrupt
 *   exits whatever IF says (26.2) and would exit again at every entry while IF = 0 keeps it pending;
 * - an NMI for the guest: the NMI exit, then the NMI injected (vcpu_exit_done), or any other event
 *   the hypervisor injects (27.6, 27.7.2: the guest is active after its delivery). An NMI the guest
 *   blocks arms NMI-window exiting instead, whose exit injects it once unblocked, as the CPU would
 *   deliver it then; interrupt-window exiting is never used (no interrupt is ever injected);
 * - INIT: vcpu_exit_resume() puts the CPU in wait-for-SIPI and restarts it on a fresh VMCS (vmcs.c,
 *   vmx_halt_reset); it never comes back here.
 * Any other exit (a kick's NMI, the preemption timer of gdbstub=1, an NMI window with the NMI still
 * blocked) writes the HLT activity state back, whatever the emulator saved.
 *
 * A single-stepped HLT (RFLAGS.TF = 1) is not halted: the single-step trap the skip leaves pending is
 * an event that ends the HLT at once (the way KVM treats a pending #DB at a halt). The monitor trap
 * flag (apic_step.h) never finds a halted guest: a step is one xAPIC store and its exit; the gdb stub
 * debugs the hypervisor, and a CPU it parks by a kick is resumed through the same path as any kick.
 */
#include <hv/vmx/halt.h>
#include <hv/vmx/vmcs.h>
#include <hv/x86.h>

const char *vmx_halt_unusable(const struct vmx_caps *c, u64 vmx_misc, u32 pin_allowed1)
{
    if (!(c->cpu & CPU_HLT_EXITING))
        return "HLT exiting is not allowed (primary processor-based control bit 7)";
    if (!(vmx_misc & VMX_MISC_ACTIVITY_HLT))
        return "VM entry cannot load the HLT activity state (IA32_VMX_MISC bit 6)";
    if (!(pin_allowed1 & PIN_EXTERNAL_INTERRUPT_EXITING))
        return "external-interrupt exiting is not allowed (pin-based control bit 0)";
    if (c->exit & EXIT_ACK_INTR_ON_EXIT)
        return "\"acknowledge interrupt on exit\" is forced on";
    return NULL;
}

void vmx_halt_reset(struct vmx_cpu *v)
{
    v->halted = false;      /* the VMCS was just written: active state, external interrupts not exiting */
}

void vmx_halt_exit(struct vmx_exit *x)
{
    struct vcpu *v = &x->vcpu;
    vcpu_skip(v);           /* HLT reports its length (28.2.5) */
    if (!(v->ops->rflags(v) & X86_RFLAGS_TF))
        x->v->halted = true;
}

/* Taken only while the guest halts: the wake-up itself (vmx_halt_after_exit); the interrupt stays pending. */
void vmx_halt_intr(struct vmx_exit *x)
{
    (void)x;
}

static void halt_end(struct vmx_cpu *v)
{
    v->halted = false;
    vmwrite(GUEST_ACTIVITY_STATE, GUEST_ACTIVITY_ACTIVE);
    vmwrite(PIN_BASED_VM_EXEC_CONTROL, vmread(PIN_BASED_VM_EXEC_CONTROL) & ~(u64)PIN_EXTERNAL_INTERRUPT_EXITING);
}

void vmx_halt_after_exit(struct vmx_exit *x)
{
    u32 basic = x->reason & 0xffff;
    if (basic == EXIT_REASON_EXTERNAL_INTERRUPT || x->vcpu.event.valid) {
        halt_end(x->v);
        return;
    }
    if (basic == EXIT_REASON_HLT && (vmread(GUEST_RFLAGS) & X86_RFLAGS_IF))
        vmwrite(PIN_BASED_VM_EXEC_CONTROL, vmread(PIN_BASED_VM_EXEC_CONTROL) | PIN_EXTERNAL_INTERRUPT_EXITING);
    vmwrite(GUEST_ACTIVITY_STATE, GUEST_ACTIVITY_HLT);
}
