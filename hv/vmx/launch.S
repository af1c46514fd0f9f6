/*
 * StartVMX (blue pill) and VmxExitHandler (the exit stub): docs/walkthrough.md steps 6 and 11.
 *
 * vmx_start(pc): the blue pill (BLUE_PILL in hv/bluepill.S) around vmx_setup_and_launch(); after
 * VMLAUNCH vmx_start returns 0 in VMX non-root operation, or the VMLAUNCH error if it failed.
 *
 * vmx_exit_stub: HOST_RIP. Saves the GPRs vmx/exit_fast.c may use in a struct guest_regs frame (the
 * file completes the frame when something needs it whole: its header), calls vmx_exit_dispatch(regs)
 * with RSP 16-byte aligned, restores them and VMRESUMEs. VMRESUME only falls through on failure, which vmx_resume_failed() reports; it never returns.
 */
#include <hv/bluepill.S>

    .text
    .code64
    .global vmx_start, vmx_exit_stub, vmx_launch_fresh

    BLUE_PILL vmx_start, vmx_setup_and_launch

/*
 * vmx_launch_fresh(regs): VMLAUNCH a loaded guest with the GPRs regs[16] (struct guest_regs order;
 * its RSP comes from the VMCS). Returns only if VMLAUNCH failed, with the callee-saved registers intact.
 */
    .align 16
vmx_launch_fresh:
    PUSH_CALLEE_SAVED
    movq %rdi, %rax
    LOAD_GUEST_GPRS %rax
    movq 0(%rax), %rax
    vmlaunch
    POP_CALLEE_SAVED
    ret

    .align 16
vmx_exit_stub:
    /* the ten registers vmx/exit_fast.c may use; RBP and R12-R15 it leaves alone (its header) */
    subq $128, %rsp                 /* struct guest_regs; HOST_RSP is 16-aligned, 128 keeps it so */
    movq %rax, 0(%rsp)
    STORE_EXIT_GPRS %rsp
    movq %rsp, %rdi
    call vmx_exit_dispatch
    movq 0(%rsp), %rax
    LOAD_EXIT_GPRS %rsp
    addq $128, %rsp
    vmresume
    call vmx_resume_failed          /* only reached if VMRESUME failed */
2:  cli
    hlt
    jmp 2b
