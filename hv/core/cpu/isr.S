/*
 * Exception and interrupt entry stubs, one per vector. Each pushes a dummy error code where the CPU
 * pushes none (SDM Vol. 3A 7.13 "Error Code"), then its vector, then every GPR, and hands the frame
 * to exception_entry(). That returns only when an armed fixup (fixup.h) took the fault: then the
 * registers come back and IRETQ resumes at the fixup address. The frame layout is struct exception_frame.
 */
    .text
    .code64

/* Vectors that push an error code: #DF 8, #TS 10, #NP 11, #SS 12, #GP 13, #PF 14, #AC 17, #CP 21,
 * #VC 29, #SX 30. */
#define HAS_ERRCODE(v) ((v) == 8 || ((v) >= 10 && (v) <= 14) || (v) == 17 || (v) == 21 || (v) == 29 || (v) == 30)

    .macro isr_stub v
    .align 16
isr_\v:
    .if !HAS_ERRCODE(\v)
    pushq $0
    .endif
    pushq $\v
    jmp isr_common
    .endm

    /* \m v for every vector v in from..to; by recursion, so in ranges of 64 (gas limits macro nesting). */
    .altmacro
    .macro for_vectors m, from, to
    \m %\from
    .if \to - \from
    for_vectors \m, %(\from + 1), \to
    .endif
    .endm

    .macro for_all_vectors m
    for_vectors \m, 0, 63
    for_vectors \m, 64, 127
    for_vectors \m, 128, 191
    for_vectors \m, 192, 255
    .endm

    for_all_vectors isr_stub

isr_common:
    pushq %rax
    pushq %rbx
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %rbp
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    cld
    movq %rsp, %rdi         /* 5 CPU words + error + vector + 15 GPRs = 22 words: RSP is 16-aligned */
    call exception_entry
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rbp
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rbx
    popq %rax
    addq $16, %rsp          /* vector and error code */
    iretq

    .section .rodata
    .align 8
    .global isr_table
    .macro isr_addr v
    .quad isr_\v
    .endm
isr_table:
    for_all_vectors isr_addr
