/*
 * The blue-pill entry both back ends share (vmx/launch.S, svm/launch.S):
 *     BLUE_PILL name, setup
 * defines name(pc): save the callee-saved registers, then setup(pc, rsp, guest_resume). The first
 * VMLAUNCH / VMRUN starts the guest at guest_resume with that RSP: it restores the registers and
 * returns 0 to name's caller, so the same code continues as the guest. If setup returns (the launch
 * failed), name returns setup's error instead.
 */
/* The System V callee-saved registers, for entry points that may return to C. */
    .macro PUSH_CALLEE_SAVED
    pushq %rbx
    pushq %rbp
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    .endm

    .macro POP_CALLEE_SAVED
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbp
    popq %rbx
    .endm

/*
 * The frame slots an exit stub saves and restores around a back end's exit_fast.c (RAX aside, which
 * VT-x's stub saves too and SVM keeps in the VMCB): the registers such a file may use. RBP and R12-R15
 * keep the guest's values throughout (hv/include/hv/exit_frame.h).
 */
    .macro FOR_EXIT_GPRS op, base
    \op %rcx, 8(\base)
    \op %rdx, 16(\base)
    \op %rbx, 24(\base)
    \op %rsi, 48(\base)
    \op %rdi, 56(\base)
    \op %r8, 64(\base)
    \op %r9, 72(\base)
    \op %r10, 80(\base)
    \op %r11, 88(\base)
    .endm

/*
 * struct guest_regs frames (RAX RCX RDX RBX RSP RBP RSI RDI R8-R15, 8 bytes each) at \base: load or
 * store every GPR but RAX and RSP, which VMLAUNCH/VMRUN take from elsewhere (RAX is the VMCB address
 * on SVM; the guest RSP is in the VMCS/VMCB): the exit stubs' registers and the five they leave alone.
 */
    .macro FOR_GUEST_GPRS op, base
    FOR_EXIT_GPRS \op, \base
    \op %rbp, 40(\base)
    \op %r12, 96(\base)
    \op %r13, 104(\base)
    \op %r14, 112(\base)
    \op %r15, 120(\base)
    .endm

    .macro LOAD_GPR reg, slot
    movq \slot, \reg
    .endm

    .macro STORE_GPR reg, slot
    movq \reg, \slot
    .endm

    .macro LOAD_GUEST_GPRS base
    FOR_GUEST_GPRS LOAD_GPR, \base
    .endm

    .macro LOAD_EXIT_GPRS base
    FOR_EXIT_GPRS LOAD_GPR, \base
    .endm

    .macro STORE_EXIT_GPRS base
    FOR_EXIT_GPRS STORE_GPR, \base
    .endm

    .macro BLUE_PILL name, setup
\name:
    PUSH_CALLEE_SAVED
    movq %rsp, %rsi                 /* guest RSP: the frame .Lguest_resume_\name pops */
    leaq .Lguest_resume_\name(%rip), %rdx
    subq $8, %rsp                   /* keep the call 16-byte aligned */
    call \setup                     /* returns only if the launch failed */
    addq $8, %rsp
    jmp .Lrestore_\name
.Lguest_resume_\name:
    xorl %eax, %eax                 /* now in the guest: return 0 */
.Lrestore_\name:
    POP_CALLEE_SAVED
    ret
    .endm
