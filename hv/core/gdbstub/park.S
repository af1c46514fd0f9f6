/*
 * gdbstub_park_here: park this CPU in the stub with the caller's context as its registers, without
 * an exception (so without the IRET that would unblock NMIs inside an NMI handler, SDM Vol. 3A
 * 6.7.1): the frame is built by hand in struct exception_frame's layout, handed to
 * gdbstub_park_frame(), and the CPU resumes from it (gdb may have changed registers, or asked a step).
 * gdbstub_break: an int3 at a known address, the stop the stub takes when gdb's bytes arrive.
 */
    .text
    .code64

    .globl gdbstub_park_here
gdbstub_park_here:
    subq $176, %rsp                 /* 22 words: 15 GPRs, vector, error, rip, cs, rflags, rsp, ss */
    movq %r15, 0(%rsp)
    movq %r14, 8(%rsp)
    movq %r13, 16(%rsp)
    movq %r12, 24(%rsp)
    movq %r11, 32(%rsp)
    movq %r10, 40(%rsp)
    movq %r9, 48(%rsp)
    movq %r8, 56(%rsp)
    movq %rbp, 64(%rsp)
    movq %rdi, 72(%rsp)
    movq %rsi, 80(%rsp)
    movq %rdx, 88(%rsp)
    movq %rcx, 96(%rsp)
    movq %rbx, 104(%rsp)
    movq %rax, 112(%rsp)
    movq $2, 120(%rsp)              /* vector: parked by an NMI kick */
    movq $0, 128(%rsp)
    movq 176(%rsp), %rax            /* the return address is the parked RIP */
    movq %rax, 136(%rsp)
    movq %cs, %rax
    movq %rax, 144(%rsp)
    pushfq
    popq %rax
    movq %rax, 152(%rsp)
    leaq 184(%rsp), %rax            /* RSP after the return */
    movq %rax, 160(%rsp)
    movq %ss, %rax
    movq %rax, 168(%rsp)
    movq %rsp, %rdi
    subq $8, %rsp                   /* entry RSP was 8 mod 16: the call needs 0 mod 16 */
    call gdbstub_park_frame
    addq $8, %rsp
    /*
     * Resume from the frame as gdb left it: every GPR, RIP (into the return slot) and RFLAGS. RFLAGS
     * comes back by POPFQ right before the RET, so a step gdb asked for (TF set in the frame by the
     * stub) traps after the RET, on the parked RIP before its instruction ran (SDM Vol. 3A 17.3.1.4:
     * no single-step trap after the instruction that sets TF): the stub takes that first #DB as the
     * step's start and the next one, after that instruction, as its end.
     */
    movq 136(%rsp), %rax
    movq %rax, 176(%rsp)
    movq 152(%rsp), %rax
    movq %rax, 168(%rsp)            /* RFLAGS right below the return slot (the saved SS is not needed) */
    movq 0(%rsp), %r15
    movq 8(%rsp), %r14
    movq 16(%rsp), %r13
    movq 24(%rsp), %r12
    movq 32(%rsp), %r11
    movq 40(%rsp), %r10
    movq 48(%rsp), %r9
    movq 56(%rsp), %r8
    movq 64(%rsp), %rbp
    movq 72(%rsp), %rdi
    movq 80(%rsp), %rsi
    movq 88(%rsp), %rdx
    movq 96(%rsp), %rcx
    movq 104(%rsp), %rbx
    movq 112(%rsp), %rax
    leaq 168(%rsp), %rsp
    popfq
    ret

    .globl gdbstub_break, gdbstub_break_insn
gdbstub_break:
gdbstub_break_insn:
    int3
    ret
