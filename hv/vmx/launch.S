/*
 * StartVMX (blue pill) and VmxExitHandler (the exit stub): docs/walkthrough.md steps 6 and 11.
 *
 * vmx_start(pc): the blue pill (BLUE_PILL in hv/bluepill.S) around vmx_setup_and_launch(); after
 * VMLAUNCH vmx_start returns 0 in VMX non-root operation, or the VMLAUNCH error if it failed.
 *
 * vmx_exit_stub: HOST_RIP. Saves every GPR in struct guest_regs order (RSP's slot is a placeholder:
 * the guest RSP is in the VMCS), calls vmx_exit_dispatch(regs) with RSP 16-byte aligned, restores and
 * VMRESUMEs. VMRESUME only falls through on failure, which vmx_resume_failed() reports; it never returns.
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
    pushq %r15
    pushq %r14
    pushq %r13
    pushq %r12
    pushq %r11
    pushq %r10
    pushq %r9
    pushq %r8
    pushq %rdi
    pushq %rsi
    pushq %rbp
    pushq $0                        /* RSP slot */
    pushq %rbx
    pushq %rdx
    pushq %rcx
    pushq %rax
    movq %rsp, %rdi                 /* HOST_RSP is 16-aligned, 16 pushes keep it so */
    call vmx_exit_dispatch
    popq %rax
    popq %rcx
    popq %rdx
    popq %rbx
    addq $8, %rsp
    popq %rbp
    popq %rsi
    popq %rdi
    popq %r8
    popq %r9
    popq %r10
    popq %r11
    popq %r12
    popq %r13
    popq %r14
    popq %r15
    vmresume
    call vmx_resume_failed          /* only reached if VMRESUME failed */
2:  cli
    hlt
    jmp 2b
