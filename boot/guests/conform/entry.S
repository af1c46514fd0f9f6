/*
 * conform: the project's conformance guest (multiboot v1, ELF32). This file holds everything that is
 * not 32-bit C: the multiboot header and entry, the GDT, the 32-bit and 64-bit exception stubs, the
 * long-mode entry/exit (call64), the real-mode round trip, the 16-bit and 64-bit APIC access forms,
 * the #DF task entry and the AP trampoline. conform.c drives the checks.
 *
 * Code that must run below 1 MiB (real mode, the 16-bit forms) lives in .text16 and is copied by
 * conform.c to LOW16 (0x8000): it only uses offsets from text16_start (T16() below) and absolute
 * addresses of 32-bit labels in far jumps.
 */
#define LOW16    0x8000              /* where .text16 is copied (conform.c) */
#define T16(x)   ((x) - text16_start)
#define APIC_TPR 0xfee00080
#define EFER     0xc0000080

#define SEL_CODE32 0x08
#define SEL_DATA32 0x10
#define SEL_CODE16 0x18              /* base LOW16, limit 0xffff */
#define SEL_DATA16 0x20              /* base 0, limit 0xffff */
#define SEL_CODE64 0x28
#define SEL_TSS64  0x48
#include "entry.inc"

    MULTIBOOT_HEADER
    START32 stack_top, conform_main

/* ------------------------------------------------------------------ 32-bit exception stubs */
    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    ISR_ERRCODE \n
    .endr

/* trap() resumes an unexpected exception here (ring 0, CS = SEL_CODE32): back to the check runner. */
    .global abort_stub
abort_stub:
    movw $SEL_DATA32, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    call abort_check                /* does not return (__builtin_longjmp) */
3:  hlt
    jmp 3b

/* ------------------------------------------------------------------ long mode (SDM Vol. 3A 10.8.5) */
/*
 * u32 call64(u32 (*fn)(void)): enter IA-32e mode (PAE, CR3 = lm_pml4, EFER.LME, CR0.PG), run the 64-bit
 * function fn, leave through compatibility mode (CR0.PG off, EFER.LME off, CR4.PAE off: 10.8.5.4).
 * Returns fn's EAX, or 0xdead00VV when an unexpected exception VV hit (lm_aborted = 1 then).
 */
    .global call64
call64:
    pushl %ebp
    pushl %ebx
    pushl %esi
    pushl %edi
    movl 20(%esp), %eax
    movl %eax, lm_fn
    movl %esp, lm_saved_esp
    movl $0, lm_aborted
    movl %cr4, %eax
    orl $0x20, %eax                 /* CR4.PAE */
    movl %eax, %cr4
    movl $lm_pml4, %eax
    movl %eax, %cr3
    movl $EFER, %ecx
    rdmsr
    orl $0x100, %eax                /* EFER.LME */
    wrmsr
    movl %cr0, %eax
    orl $0x80000000, %eax           /* CR0.PG: LMA becomes 1 */
    movl %eax, %cr0
    ljmp $SEL_CODE64, $lm_entry
    .code64
lm_entry:
    movl %esp, %esp                 /* zero-extend: the upper halves are undefined after the switch */
    lidt idt64_desc(%rip)
    movl lm_fn(%rip), %eax
    call *%rax
lm_done:
    movl %eax, lm_result(%rip)
    pushq $SEL_CODE32
    movl $lm_compat, %eax
    pushq %rax
    lretq                           /* to compatibility mode */
    .global lm_abort
lm_abort:                           /* isr64 resumes an unexpected exception here */
    movl lm_vec(%rip), %eax
    orl $0xdead0000, %eax
    movl $1, lm_aborted(%rip)
    jmp lm_done
    .code32
lm_compat:
    movl %cr0, %eax
    andl $0x7fffffff, %eax
    movl %eax, %cr0
    movl $EFER, %ecx
    rdmsr
    andl $~0x100, %eax
    wrmsr
    movl %cr4, %eax
    andl $~0x20, %eax
    movl %eax, %cr4
    lidt idt32_desc
    movw $SEL_DATA32, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movw %ax, %fs
    movw %ax, %gs
    movl lm_saved_esp, %esp
    movl lm_result, %eax
    popl %edi
    popl %esi
    popl %ebx
    popl %ebp
    ret

/* 64-bit exception stubs: record vector, error, RIP, CR2 in lm_log; a #PF with lm_pf_pte armed sets the
   page present and retries; else resume at lm_fixup if armed, else abort the 64-bit function. */
    .code64
    .macro ISR64 n
isr64_\n:
    .if !(\n == 8 || (\n >= 10 && \n <= 14) || \n == 17 || \n == 21 || \n == 29 || \n == 30)
    pushq $0
    .endif
    pushq $\n
    jmp isr64_common
    .endm
    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    ISR64 \n
    .endr
isr64_common:
    pushq %rax
    pushq %rbx
    pushq %rcx
    movl 24(%rsp), %eax
    movl %eax, lm_vec(%rip)
    movl lm_nlog(%rip), %ebx
    cmpl $4, %ebx
    jae 1f
    leaq lm_log_vec(%rip), %rcx
    movl %eax, (%rcx,%rbx,4)
    movl 32(%rsp), %eax
    leaq lm_log_err(%rip), %rcx
    movl %eax, (%rcx,%rbx,4)
    movl 40(%rsp), %eax
    leaq lm_log_rip(%rip), %rcx
    movl %eax, (%rcx,%rbx,4)
    movq %cr2, %rax
    leaq lm_log_cr2(%rip), %rcx
    movl %eax, (%rcx,%rbx,4)
    movl %esp, %eax
    leaq lm_log_rsp(%rip), %rcx
    movl %eax, (%rcx,%rbx,4)
    incl lm_nlog(%rip)
1:  cmpl $1, lm_vec(%rip)
    jne 5f
    andq $~0x100, 56(%rsp)          /* #DB: stop single-stepping, keep DR6 in lm_aux, clear it */
    movq %dr6, %rax
    movl %eax, lm_aux(%rip)
    xorl %eax, %eax
    movq %rax, %dr6
    jmp 4f
5:  cmpl $14, lm_vec(%rip)
    jne 2f
    movl lm_pf_pte(%rip), %ebx
    testl %ebx, %ebx
    jz 2f
    orl $1, (%rbx)                  /* the fresh page becomes present */
    movl lm_pf_page(%rip), %eax
    invlpg (%rax)
    movl $0, lm_pf_pte(%rip)
    jmp 4f                          /* retry the faulting delivery */
2:  movl lm_fixup(%rip), %eax
    testl %eax, %eax
    jz 3f
    movq %rax, 40(%rsp)
    movl $0, lm_fixup(%rip)
    jmp 4f
3:  movl $lm_abort, %eax
    movq %rax, 40(%rsp)
4:  popq %rcx
    popq %rbx
    popq %rax
    addq $16, %rsp
    iretq

/* ------------------------------------------------------------------ 64-bit checks (called by call64) */
/* Each APIC form sets TPR with a plain store, does its access, and returns what the check needs in EAX
   (lm_aux(%rip) for a second value). conform.c compares. */
#define SET_TPR(v) movl $(v), %eax; movl $APIC_TPR, %edx; movl %eax, (%rdx)
#define GET_TPR    movl $APIC_TPR, %edx; movl (%rdx), %eax
/* Keep the flag setcc took (ZF, CF) in lm_aux, return the TPR. */
#define AUX_FLAG_RET_TPR(setcc) setcc %al; movzbl %al, %eax; movl %eax, lm_aux(%rip); GET_TPR; ret

    .global f64_mov89, f64_rex, f64_rex_sib, f64_movc7, f64_movabs_store, f64_movabs_load, f64_mov8b_rex
    .global f64_xchg, f64_lock_xadd, f64_lock_cmpxchg, f64_lock_bts, f64_rep_stos, f64_rep_movs
    .global f64_addr32, f64_gs_base, f64_lock_or, f64_lock_btr, f64_lmcheck, f64_pf_delivery
f64_mov89:
    SET_TPR(0)
    movl $0x41, %eax
    movq $APIC_TPR, %rdx
    movl %eax, (%rdx)               /* 89 02 */
    GET_TPR
    ret
f64_rex:
    SET_TPR(0)
    movl $0x42, %r9d
    movq $APIC_TPR, %r10
    movl %r9d, (%r10)               /* 45 89 0a */
    GET_TPR
    ret
f64_rex_sib:
    SET_TPR(0)
    movl $0x43, %r9d
    movq $0xfee00000, %r10
    movq $0x10, %r11
    movl %r9d, 0x40(%r10,%r11,4)    /* 47 89 4c 9a 40 */
    GET_TPR
    ret
f64_movc7:
    SET_TPR(0)
    movq $0xfee00000, %r10
    movl $0x44, 0x80(%r10)          /* 41 c7 82 80 00 00 00 44 00 00 00 */
    GET_TPR
    ret
f64_movabs_store:
    SET_TPR(0)
    movl $0x45, %eax
    movabsl %eax, 0xfee00080        /* a3 moffs64 */
    GET_TPR
    ret
f64_movabs_load:
    SET_TPR(0x46)
    xorl %eax, %eax
    movabsl 0xfee00080, %eax        /* a1 moffs64 */
    ret
f64_mov8b_rex:
    SET_TPR(0x47)
    movq $APIC_TPR, %r10
    movl (%r10), %r9d               /* 45 8b 0a */
    movl %r9d, %eax
    ret
f64_xchg:
    SET_TPR(0x10)
    movl $0x48, %r9d
    movq $APIC_TPR, %r10
    xchgl %r9d, (%r10)              /* 45 87 0a */
    movl %r9d, lm_aux(%rip)
    GET_TPR
    ret
f64_lock_or:
    SET_TPR(0x10)
    movq $APIC_TPR, %r10
    lock orl $0x39, (%r10)          /* f0 41 83 0a 39 */
    GET_TPR
    ret
f64_lock_xadd:
    SET_TPR(0x10)
    movl $0x39, %r9d
    movq $APIC_TPR, %r10
    lock xaddl %r9d, (%r10)         /* f0 45 0f c1 0a */
    movl %r9d, lm_aux(%rip)
    GET_TPR
    ret
f64_lock_cmpxchg:
    SET_TPR(0x10)
    movl $0x10, %eax
    movl $0x4a, %r9d
    movq $APIC_TPR, %r10
    lock cmpxchgl %r9d, (%r10)      /* f0 45 0f b1 0a */
    AUX_FLAG_RET_TPR(setz)
f64_lock_bts:
    SET_TPR(0x10)
    movq $APIC_TPR, %r10
    lock btsl $6, (%r10)            /* f0 41 0f ba 2a 06 */
    AUX_FLAG_RET_TPR(setc)
f64_lock_btr:
    SET_TPR(0x51)
    movq $APIC_TPR, %r10
    lock btrl $0, (%r10)            /* f0 41 0f ba 32 00 */
    AUX_FLAG_RET_TPR(setc)
f64_rep_stos:
    SET_TPR(0)
    movl $0x4b, %eax
    movq $APIC_TPR, %rdi
    movq $1, %rcx
    rep stosl                       /* f3 ab, RDI/RCX */
    movl $APIC_TPR, %r8d
    subq %r8, %rdi
    addq %rcx, %rdi                 /* 4 when RCX = 0 and RDI advanced by 4 */
    movl %edi, lm_aux(%rip)
    GET_TPR
    ret
f64_rep_movs:
    SET_TPR(0)
    movl $0x4c, lm_aux(%rip)
    movl $lm_aux, %esi
    movq $APIC_TPR, %rdi
    movq $1, %rcx
    rep movsl                       /* f3 a5 */
    GET_TPR
    ret
f64_addr32:
    SET_TPR(0)
    movl $0x4d, %eax
    movl $APIC_TPR, %edx
    addr32 movl %eax, (%edx)        /* 67 89 02: 32-bit addressing in 64-bit mode */
    GET_TPR
    ret
f64_gs_base:                        /* GS.base = APIC page (IA32_GS_BASE, SDM 3.4.4): 65 89 04 25 80 00 00 00 */
    SET_TPR(0)
    movl $0xc0000101, %ecx
    movl $0xfee00000, %eax
    xorl %edx, %edx
    wrmsr
    movl $0x4e, %eax
    movl %eax, %gs:0x80
    movl $0xc0000101, %ecx
    xorl %eax, %eax
    xorl %edx, %edx
    wrmsr
    GET_TPR
    ret
f64_lock_and:
    SET_TPR(0x7f)
    movq $APIC_TPR, %r10
    lock andl $0x51, (%r10)         /* f0 41 83 22 51 */
    GET_TPR
    ret
f64_lock_add:
    SET_TPR(0x10)
    movl $0x42, %r9d
    movq $APIC_TPR, %r10
    lock addl %r9d, (%r10)          /* f0 45 01 0a */
    GET_TPR
    ret
f64_stos:
    SET_TPR(0)
    movl $0x53, %eax
    movq $APIC_TPR, %rdi
    stosl                           /* ab */
    GET_TPR
    ret
f64_byte_store:                     /* REX byte store (model specific: returns TPR; lm_aux unused) */
    SET_TPR(0x10)
    movb $0x54, %r9b
    movq $APIC_TPR, %r10
    movb %r9b, (%r10)               /* 45 88 0a */
    GET_TPR
    ret
f64_disp32_neg:                     /* base above the page, negative disp32: 41 89 82 80 00 f0 ff */
    SET_TPR(0)
    movl $0x55, %eax
    movq $0xfef00000, %r10
    movl %eax, -0xfff80(%r10)
    GET_TPR
    ret
    .global f64_lock_and, f64_lock_add, f64_stos, f64_byte_store, f64_disp32_neg
/* Single step over CPUID in 64-bit mode: the #DB (logged by isr64_common) comes after it. */
    .global f64_tf_cpuid, f64_tf_cpuid_next
f64_tf_cpuid:
    movl $0, lm_nlog(%rip)
    xorl %eax, %eax
    xorl %ecx, %ecx
    pushfq
    orq $0x100, (%rsp)
    popfq
    cpuid
f64_tf_cpuid_next:
    nop
    ret
/* In 64-bit mode: EFER.LMA (bit 10) and a 64-bit shift; returns 0x6464 when both hold. */
f64_lmcheck:
    movl $EFER, %ecx
    rdmsr
    btl $10, %eax
    jnc 1f
    movq $1, %rax
    shlq $40, %rax
    shrq $40, %rax
    cmpq $1, %rax
    jne 1f
    movl $0x6464, %eax
    ret
1:  xorl %eax, %eax
    ret
/*
 * #PF during delivery (SDM Vol. 3A 6.15 #PF, Table 6-5): RSP = lm_arg(%rip), whose next pushes fall on a
 * not-present page (lm_pf_pte(%rip) armed); #PF goes to IST1 (a 64-bit TSS loaded here), which makes the page
 * present and retries: the #UD is then delivered onto the fresh page. lm_fixup(%rip) ends at 1.
 */
    .macro PF_DELIVERY name, insn:vararg
\name:
    andb $~2, gdt + SEL_TSS64 + 5(%rip)   /* available again, for LTR */
    movw $SEL_TSS64, %ax
    ltr %ax
    movq %rsp, %r15
    movl lm_arg(%rip), %esp
    movl $1f, lm_fixup(%rip)
    .global \name\()_insn, \name\()_next
\name\()_insn:
    \insn
\name\()_next:
1:  movq %r15, %rsp
    xorl %eax, %eax
    ret
    .endm
    .global f64_pf_delivery, f64_pf_delivery_bp, f64_pf_delivery_int
    PF_DELIVERY f64_pf_delivery, ud2          /* a fault: #UD */
    PF_DELIVERY f64_pf_delivery_bp, int3      /* a software exception: #BP, RIP after the INT3 */
    PF_DELIVERY f64_pf_delivery_int, int $4   /* a software interrupt (CD 04) through IDT[4] */

/* ------------------------------------------------------------------ 32-bit helpers */
    .code32
/* The #DF task (SDM Vol. 3A 7.3, 6.15 #DF): entered by a task switch through the IDT's task gate.
   Records the error code, CR2 and the back link, points the interrupted task at df_resume with its
   saved stack, and returns to it with IRET (NT = 1: back through the link). */
    .global df_task_entry, df_resume, df_trigger, df_ud2
df_task_entry:
    popl %eax
    movl %eax, df_error
    movl %cr2, %eax
    movl %eax, df_cr2
    movl df_tss, %eax               /* previous-task link */
    movl %eax, df_link
    movl main_tss + 32, %eax        /* the interrupted task's saved EIP */
    movl %eax, df_eip
    incl df_count
    movl $df_resume, main_tss + 32
    movl df_saved_esp, %eax
    movl %eax, main_tss + 56        /* ESP */
    iret
    jmp df_task_entry               /* the next switch into this task resumes here */
/* void df_trigger(u32 esp): ud2 with ESP on a not-present page. */
df_trigger:
    pushl %ebp
    pushl %ebx
    pushl %esi
    pushl %edi
    movl %esp, df_saved_esp
    movl 20(%esp), %eax
    movl %eax, %esp
df_ud2:
    ud2
df_resume:
    movl df_saved_esp, %esp
    popl %edi
    popl %esi
    popl %ebx
    popl %ebp
    ret

/* u32 call16(u32 offset, u32 eax): far call into 16-bit protected-mode code at LOW16 + offset with
   that EAX; returns its EAX. */
    .global call16
call16:
    pushl %ebx
    pushl %esi
    pushl %edi
    movl 16(%esp), %eax
    movl %eax, c16_target
    movw $SEL_CODE16, c16_target + 4
    movl 20(%esp), %eax
    lcall *c16_target
    popl %edi
    popl %esi
    popl %ebx
    ret

/*
 * u32 real_roundtrip(void): protected mode -> real mode -> protected mode (SDM Vol. 3A 10.9.2 and
 * 10.9.1): through a 16-bit code segment, CR0.PE off, a far jump to a real-mode CS; in real mode store
 * a marker through DS = 0 and read CR0 with SMSW; then PE on and a far jump back. Returns the marker
 * word it read back in real mode (0x5245) or'ed with PE seen in real mode (bit 16, must be 0).
 */
    /* Save the callee-saved registers, ESP and the IDT, load the real-mode IVT, enter 16-bit code. */
    .macro TO_16BIT target
    pushl %ebp
    pushl %ebx
    pushl %esi
    pushl %edi
    movl %esp, rm_saved_esp
    sidt rm_saved_idt
    lidt rm_ivt_desc
    ljmp $SEL_CODE16, $T16(\target)
    .endm

    .global real_roundtrip
real_roundtrip:
    TO_16BIT rm_16pm
rm_back32:
    LOAD_DATA_SEGS SEL_DATA32
    movl rm_saved_esp, %esp
    lidt rm_saved_idt
    movl rm_result, %eax
    popl %edi
    popl %esi
    popl %ebx
    popl %ebp
    ret

/* u32 unreal_apic_store(void): like real_roundtrip, into real mode with flat 4 GiB data segments (DS..GS
   = SEL_DATA32 before PE is cleared); returns the TPR the real-mode code read back after its store. */
    .global unreal_apic_store
unreal_apic_store:
    TO_16BIT rm_unreal_store

/* ------------------------------------------------------------------ 16-bit code (copied to LOW16) */
    .section .text16, "ax"
    .global text16_start, text16_end
    .global t16_mov89, t16_movc7, t16_rep_stos, t16_xchg, t16_lock_xadd, t16_fs16
    .global t16_lock_or, t16_lock_and, t16_lock_add, t16_lock_cmpxchg, t16_lock_bts, t16_lock_btr
    .global t16_rep_movs, t16_mov8b, t16_fs_disp16, rm_unreal_store
text16_start:
    .code16
rm_16pm:                            /* 16-bit protected mode, CS base LOW16 */
    movw $SEL_DATA16, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movw %ax, %fs
    movw %ax, %gs
    movl %cr0, %eax
    andl $~1, %eax                  /* CR0.PE off */
    movl %eax, %cr0
    ljmp $(LOW16 >> 4), $T16(rm_real)
rm_real:                            /* real mode: CS = 0x800 */
    xorw %ax, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movw $0x6f00, %sp
    movw $0x5245, 0x6ff0            /* through DS = 0 */
    movw 0x6ff0, %bx
    smsw %ax
    andl $1, %eax
    shll $16, %eax
    movzwl %bx, %ebx
    orl %ebx, %eax
    movl %eax, 0x6ff4               /* below 64 KiB: fetched in protected mode */
    movl %cr0, %eax
    orl $1, %eax                    /* CR0.PE on */
    movl %eax, %cr0
    ljmpl $SEL_CODE32, $rm_back32_trampoline

/* 16-bit protected-mode APIC forms (CS = SEL_CODE16, DS = flat 4 GiB): returns TPR in EAX via LRETL. */
#define SET_TPR16(v) movl $(v), %eax; movl $APIC_TPR, %edx; addr32 movl %eax, (%edx)
#define GET_TPR16    movl $APIC_TPR, %edx; addr32 movl (%edx), %eax
/* Return TPR << 8 | the flag setcc took (ZF, CF) after a locked read-modify-write. */
#define RET_TPR_FLAG(setcc) setcc %bl; GET_TPR16; shll $8, %eax; movb %bl, %al; lretl
t16_mov89:
    SET_TPR16(0)
    movl $0x61, %eax
    movl $APIC_TPR, %edi
    addr32 movl %eax, (%edi)        /* 66 67 89 07 */
    GET_TPR16
    lretl
t16_movc7:
    SET_TPR16(0)
    movl $0xfee00000, %ebx
    movl $0x0c, %esi
    addr32 movl $0x62, 0x50(%ebx,%esi,4)   /* 66 67 c7 44 b3 50 imm32: SIB + disp8 */
    GET_TPR16
    lretl
t16_rep_stos:
    SET_TPR16(0)
    movl $0x63, %eax
    movl $APIC_TPR, %edi
    movl $1, %ecx
    addr32 rep stosl                /* 67 f3 66 ab: EDI/ECX */
    GET_TPR16
    lretl
t16_xchg:
    SET_TPR16(0x10)
    movl $0x64, %ecx
    movl $APIC_TPR, %edi
    addr32 xchgl %ecx, (%edi)       /* 66 67 87 0f */
    GET_TPR16
    shll $8, %eax
    orl %ecx, %eax                  /* TPR << 8 | old value */
    lretl
t16_lock_xadd:
    SET_TPR16(0x10)
    movl $0x55, %ecx
    movl $APIC_TPR, %edi
    lock addr32 xaddl %ecx, (%edi)  /* f0 66 67 0f c1 0f */
    GET_TPR16
    shll $8, %eax
    orl %ecx, %eax
    lretl
t16_lock_or:
    SET_TPR16(0x10)
    movl $APIC_TPR, %edi
    lock addr32 orl $0x61, (%edi)   /* f0 66 67 83 0f 61 */
    GET_TPR16
    lretl
t16_lock_and:
    SET_TPR16(0x7f)
    movl $APIC_TPR, %edi
    lock addr32 andl $0x62, (%edi)  /* f0 66 67 83 27 62 */
    GET_TPR16
    lretl
t16_lock_add:
    SET_TPR16(0x10)
    movl $0x53, %ecx
    movl $APIC_TPR, %edi
    lock addr32 addl %ecx, (%edi)   /* f0 66 67 01 0f */
    GET_TPR16
    lretl
t16_lock_cmpxchg:
    SET_TPR16(0x10)
    movl $0x10, %eax
    movl $0x64, %ecx
    movl $APIC_TPR, %edi
    lock addr32 cmpxchgl %ecx, (%edi)   /* f0 66 67 0f b1 0f */
    RET_TPR_FLAG(setz)
t16_lock_bts:
    SET_TPR16(0x25)
    movl $APIC_TPR, %edi
    lock addr32 btsl $6, (%edi)     /* f0 66 67 0f ba 2f 06 */
    RET_TPR_FLAG(setc)
t16_lock_btr:
    SET_TPR16(0x67)
    movl $APIC_TPR, %edi
    lock addr32 btrl $1, (%edi)     /* f0 66 67 0f ba 37 01 */
    RET_TPR_FLAG(setc)
t16_rep_movs:                       /* ESI = the caller's source word (EAX on entry, set by call16's caller) */
    movl %eax, %esi
    SET_TPR16(0)
    movl $APIC_TPR, %edi
    movl $1, %ecx
    addr32 rep movsl                /* 67 f3 66 a5: DS:ESI -> ES:EDI */
    GET_TPR16
    lretl
t16_mov8b:
    SET_TPR16(0x6a)
    movl $APIC_TPR, %esi
    xorl %eax, %eax
    addr32 movl (%esi), %eax        /* 66 67 8b 06 */
    lretl
t16_fs_disp16:                      /* FS base = the xAPIC page: 64 66 c7 06 80 00 imm32 (disp16, no base) */
    SET_TPR16(0)
    movw $0x58, %ax
    movw %ax, %fs
    movl $0x6b, %fs:0x80
    movw $SEL_DATA32, %ax
    movw %ax, %fs
    GET_TPR16
    lretl

/* Real mode with 4 GiB segment limits ("unreal", SDM Vol. 3A 10.9.2: the cached limits stay when PE is
   cleared): a store to the xAPIC from real-mode code, addressed through DS (base 0) with 67 66 89. */
rm_unreal_store:                    /* 16-bit protected mode, CS base LOW16; DS..GS keep flat 4 GiB */
    movl %cr0, %eax
    andl $~1, %eax
    movl %eax, %cr0
    ljmp $(LOW16 >> 4), $T16(rm_unreal_real)
rm_unreal_real:                     /* DS keeps its protected-mode cache: base 0, limit 4 GiB */
    movl $0x6c, %eax
    movl $APIC_TPR, %edi
    addr32 movl %eax, (%edi)        /* 67 66 89 07 */
    addr32 movl (%edi), %eax
    movl %eax, 0x6ff4
    movl %cr0, %eax
    orl $1, %eax
    movl %eax, %cr0
    ljmpl $SEL_CODE32, $rm_back32_trampoline

t16_fs16:                           /* FS = SEL_APIC (base 0xfee00000): 16-bit addressing, 64 66 89 07 */
    SET_TPR16(0)
    movw $0x58, %ax
    movw %ax, %fs
    movl $0x66, %eax
    movw $0x80, %bx
    movl %eax, %fs:(%bx)
    movw $SEL_DATA32, %ax
    movw %ax, %fs
    GET_TPR16
    lretl
text16_end:
    .code32

    .text
rm_back32_trampoline:
    movw $SEL_DATA32, %ax
    movw %ax, %ds
    movl 0x6ff4, %eax
    movl %eax, rm_result
    jmp rm_back32

/* ------------------------------------------------------------------ AP trampoline (SDM 9.4.4) */
    AP_TRAMPOLINE
    movl $ap_stack_top, %esp
    call ap_main
4:  cli
    hlt
    jmp 4b

/* ------------------------------------------------------------------ data */
    .data
    .align 16
    .global gdt, isr32_table, isr64_table
gdt:
    .quad 0
    .quad 0x00cf9a000000ffff        /* 0x08 code32 flat */
    .quad 0x00cf92000000ffff        /* 0x10 data32 flat */
    .quad 0x00009a008000ffff        /* 0x18 code16, base LOW16, limit 64 KiB */
    .quad 0x000092000000ffff        /* 0x20 data16, base 0, limit 64 KiB */
    .quad 0x00af9a000000ffff        /* 0x28 code64 (L = 1) */
    .quad 0                         /* 0x30 main TSS (conform.c) */
    .quad 0                         /* 0x38 #DF TSS (conform.c) */
    .quad 0, 0                      /* 0x48 64-bit TSS, 16 bytes (conform.c) */
    .quad 0
    .quad 0xfe4092e000000fff        /* 0x58 data, base 0xfee00000 (the xAPIC page), limit 0xfff */
gdt_end:
gdt_desc:
    .word gdt_end - gdt - 1
    .long gdt
    .align 8
    .global idt32_desc, idt64_desc
idt32_desc:
    .word 0
    .long 0
    .align 8
idt64_desc:
    .word 0
    .quad 0
rm_ivt_desc:
    .word 0x3ff
    .long 0
rm_saved_idt:
    .word 0
    .long 0
    .align 4
c16_target:
    .long 0
    .word 0

isr32_table:
    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .long isr\n
    .endr
isr64_table:
    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .long isr64_\n
    .endr

    .bss
    .align 16
    .global lm_fn, lm_result, lm_aborted, lm_saved_esp, lm_vec, lm_fixup, lm_aux, lm_arg
    .global lm_nlog, lm_log_vec, lm_log_err, lm_log_rip, lm_log_cr2, lm_log_rsp, lm_pf_pte, lm_pf_page
    .global df_error, df_cr2, df_link, df_eip, df_count, df_saved_esp, rm_result
lm_fn:          .long 0
lm_result:      .long 0
lm_aborted:     .long 0
lm_saved_esp:   .long 0
lm_vec:         .long 0
lm_fixup:       .long 0
lm_aux:         .long 0
lm_arg:         .long 0
lm_nlog:        .long 0
lm_log_vec:     .long 0, 0, 0, 0
lm_log_err:     .long 0, 0, 0, 0
lm_log_rip:     .long 0, 0, 0, 0
lm_log_cr2:     .long 0, 0, 0, 0
lm_log_rsp:     .long 0, 0, 0, 0
lm_pf_pte:      .long 0
lm_pf_page:     .long 0
df_error:       .long 0
df_cr2:         .long 0
df_link:        .long 0
df_eip:         .long 0
df_count:       .long 0
df_saved_esp:   .long 0
rm_saved_esp:   .long 0
rm_result:      .long 0
    .align 16
    .space 16384
    .global stack_top
stack_top:
    .space 4096
    .global ap_stack_top
ap_stack_top:
