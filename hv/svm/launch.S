/*
 * StartSVM (blue pill) and the VMRUN loop (the AMD mirror of vmx/launch.S).
 *
 * svm_start(pc): the blue pill (BLUE_PILL in hv/bluepill.S) around svm_setup_and_launch(); after
 * the first VMRUN svm_start returns 0 in the guest.
 *
 * svm_vmrun_loop(stack_top, vmcb_pa, host_vmcb_pa, regs): switches to the VMM stack, loads the guest
 * GPRs from the frame (struct guest_regs, a copy of regs[16] or zero; RAX and RSP live in the VMCB,
 * APM 15.5.1) and loops: VMRUN with RAX = the VMCB's physical address; after #VMEXIT store the GPRs
 * svm/exit_fast.c may use, call svm_exit_dispatch(frame, vmcb), load them back (hv/include/hv/exit_frame.h).
 *
 * Host state (APM 15.5 "VMRUN", 15.6 "#VMEXIT"): VMRUN saves to VM_HSAVE_PA and #VMEXIT reloads only
 * CS, SS, DS, ES, GDTR, IDTR, CR0, CR3, CR4, EFER, RFLAGS, RIP, RSP and RAX. FS, GS, TR, LDTR,
 * KernelGSBase, STAR/LSTAR/CSTAR/SFMASK and SYSENTER_* are switched by VMSAVE/VMLOAD only (15.5.2):
 * for a loaded guest (host_vmcb_pa != 0) the host's are VMSAVEd once to host_vmcb; each round VMLOADs
 * the guest's, VMRUNs, VMSAVEs them back into the guest's VMCB and VMLOADs the host's before any C code
 * runs (it reaches struct percpu through GS base, which a guest OS sets to its own). The blue-pill guest
 * shares all of that state with the host (host_vmcb_pa = 0): no VMSAVE/VMLOAD on its exit path.
 *
 * GIF (APM 15.17): CLGI once before the loop. VMRUN sets GIF=1 for the guest and #VMEXIT clears it,
 * so the exit handler always runs with GIF=0: no interrupt, NMI or SMI can enter the host between
 * #VMEXIT and the next VMRUN (the host also keeps RFLAGS.IF=0, as under VT-x).
 */
#include <hv/bluepill.S>

    .text
    .code64
    .global svm_start, svm_vmrun_loop

    BLUE_PILL svm_start, svm_setup_and_launch

/* Frame on the VMM stack: struct guest_regs (16 slots, 128 bytes), the VMCB, the host VMSAVE area. */
#define FRAME_VMCB 128
#define FRAME_HOST_VMCB 136

    .align 16
svm_vmrun_loop:
    andq $-16, %rdi
    movq %rdi, %rsp
    pushq %rdx                      /* the host VMSAVE area at FRAME_HOST_VMCB */
    pushq %rsi                      /* the VMCB's physical address at FRAME_VMCB */
    subq $128, %rsp
    movq %rsp, %rdi                 /* the guest GPR frame: a copy of regs[16], or zero */
    movl $16, %r8d
    testq %rcx, %rcx
    jz 1f
    movq %rcx, %rsi
    movq %r8, %rcx
    rep movsq
    jmp 3f
1:  xorl %eax, %eax
    movq %r8, %rcx
    rep stosq
3:  clgi
    cmpq $0, FRAME_HOST_VMCB(%rsp)
    jz 4f
    movq FRAME_HOST_VMCB(%rsp), %rax
    vmsave
    /*
     * Every guest GPR from the frame once; after that a round stores and loads only those svm/exit_fast.c
     * may use: RBP and R12-R15 keep the guest's values across it (hv/include/hv/exit_frame.h).
     */
4:  LOAD_GUEST_GPRS %rsp
    cmpq $0, FRAME_HOST_VMCB(%rsp)
    jnz .Lloaded_round

    /* The blue-pill guest shares the host's VMSAVE state: one round is VMRUN, GPRs, dispatch, GPRs. */
.Lblue_pill_round:
    movq FRAME_VMCB(%rsp), %rax
    vmrun
    STORE_EXIT_GPRS %rsp
    movq %rsp, %rdi                 /* 16-byte aligned: stack top - 144 */
    movq FRAME_VMCB(%rsp), %rsi     /* the VMCB (identity-mapped: its address is its pointer) */
    call svm_exit_dispatch
    LOAD_EXIT_GPRS %rsp
    jmp .Lblue_pill_round

    /* A loaded guest: its VMSAVE state in the VMCB, the host's in host_vmcb (see the top). */
.Lloaded_round:
    movq FRAME_VMCB(%rsp), %rax
    vmload
    vmrun
    /* #VMEXIT: RSP and RAX are the host's again (the frame, the VMCB address); the rest is the guest's. */
    vmsave
    STORE_EXIT_GPRS %rsp
    movq FRAME_HOST_VMCB(%rsp), %rax
    vmload                          /* the host's GS base (struct percpu) and TR before any C code */
    movq %rsp, %rdi
    movq FRAME_VMCB(%rsp), %rsi
    call svm_exit_dispatch
    LOAD_EXIT_GPRS %rsp
    jmp .Lloaded_round
