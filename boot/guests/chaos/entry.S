/*
 * chaos: multiboot header and entry, the GDT, 256 exception/interrupt stubs, the AP trampoline and the
 * memory-access forms the random ops use. chaos.c drives everything.
 *
 * Fault recovery: every vector but NMI (2) resumes the interrupted CPU's current op at its recovery
 * point (chaos.c trap(): __builtin_longjmp), so a stub never needs to know whether the CPU pushed an
 * error code (INT n never does, a #GP does). NMIs are counted and return with IRET, which also ends
 * NMI blocking (SDM Vol. 3A 6.7.1): an NMI frame has no error code.
 */
#define SEL_CODE32 0x08
#define SEL_DATA32 0x10
#define CPU_STACK 16384              /* chaos.c CPU_STACK */
#include "entry.inc"

    MULTIBOOT_HEADER
    START32 cpu_stacks + CPU_STACK, chaos_main   /* CPU 0's stack (chaos.c) */

/* ------------------------------------------------------------------ 256 stubs */
/*
 * Each stub first checks that ESP is on a CPU stack (or the AP boot stack): code fetched from the xAPIC
 * page can load ESP with anything (BC 00 00 00 00, MOV ESP, 0, from a TPR of BCh: chaos seed 6, op
 * 398972), and then the CPU pushed its frame where nothing keeps it (ROM, or nothing). The flags
 * are the interrupted code's own in the frame, so CMP may change them. On a bad stack the frame is lost:
 * isr_bad_stack resumes the op's recovery point from a stack of its own (chaos.c trap_bad_stack).
 */
#define MAXCPU 16                    /* chaos.c MAXCPU */
    .macro ISR n
isr\n:
    cmpl $cpu_stacks + 64, %esp
    jb 1f
    cmpl $cpu_stacks + MAXCPU * CPU_STACK, %esp
    jbe 2f
    cmpl $ap_boot_stack_top - 4096 + 64, %esp
    jb 1f
    cmpl $ap_boot_stack_top, %esp
    jbe 2f
1:  movl $\n, %esi
    jmp isr_bad_stack
2:  pushl $\n
    jmp isr_common
    .endm
    .altmacro
    .set i, 0
    .rept 256
    ISR %i
    .set i, i + 1
    .endr

isr_common:                         /* [esp] = vector; for NMI the IRET frame follows */
    pusha
    cld
    pushl %esp
    call trap                       /* returns only for an NMI */
    addl $4, %esp
    popa
    addl $4, %esp
    iret

isr_bad_stack:                      /* ESI = vector (~0: f_fetch's end); ESP is not to be trusted */
    movl $1, %eax
    cpuid                           /* EBX[31:24]: this CPU's initial APIC ID */
    shrl $24, %ebx
    movzbl idx_of_apic(%ebx), %edi  /* its index + 1; 0: not known (no stack of its own) */
    testl %edi, %edi
    jz 3f
    movl %edi, %esp
    shll $10, %esp                  /* (index + 1) * 1024: the top of its trap stack */
    addl $trap_stacks, %esp
    decl %edi
    pushl %edi
    pushl %esi
    call trap_bad_stack             /* never returns */
3:  cli
    hlt
    jmp 3b

/* INT n for every n: int_table[n] is "int $n; ret" (3 bytes each). */
    .global int_table
    .align 4
int_table:
    .set i, 0
    .rept 256
    .byte 0xcd, i, 0xc3
    .set i, i + 1
    .endr

/* ------------------------------------------------------------------ memory-access forms */
/* Each form: EDX = address, EAX = value, ECX = second value; may clobber EBX/ESI/EDI (chaos.c acc()). */
    .global acc_forms, acc_forms_end
    .align 4
acc_forms:
    .long f_st8, f_st16, f_st32, f_ld8, f_ld16, f_ld32, f_stos, f_rep_stos, f_movs_to, f_movs_from
    .long f_xchg, f_lock_add, f_lock_cmpxchg, f_lock_bts, f_or, f_imm, f_sib, f_movzx, f_lock_xadd
    .long f_cmp, f_test, f_movsx16, f_lock_btr, f_rep_movs_to, f_rep_lods
acc_forms_end:
    .long f_fetch                   /* an instruction fetch: its own op (not an access form) */
f_st8:      movb %al, (%edx); ret
f_st16:     movw %ax, (%edx); ret
f_st32:     movl %eax, (%edx); ret
f_ld8:      movb (%edx), %al; ret
f_ld16:     movw (%edx), %ax; ret
f_ld32:     movl (%edx), %eax; ret
f_stos:     movl %edx, %edi; stosl; ret
f_rep_stos: movl %edx, %edi; movl $2, %ecx; rep stosl; ret
f_movs_to:  movl %edx, %edi; movl $acc_scratch, %esi; movsl; ret
f_movs_from: movl %edx, %esi; movl $acc_scratch, %edi; movsl; ret
f_xchg:     xchgl %eax, (%edx); ret
f_lock_add: lock addl %eax, (%edx); ret
f_lock_cmpxchg: lock cmpxchgl %ecx, (%edx); ret
f_lock_bts: lock btsl $3, (%edx); ret
f_or:       orl %eax, (%edx); ret
f_imm:      movl $0x5a5aa5a5, (%edx); ret
f_sib:      leal -0x48(%edx), %ebx; movl $4, %ecx; movl %eax, 0x40(%ebx,%ecx,2); ret
f_movzx:    movzbl (%edx), %eax; ret
f_lock_xadd: lock xaddl %eax, (%edx); ret
f_cmp:      cmpl %eax, (%edx); ret
f_test:     testl %eax, (%edx); ret
f_movsx16:  movswl (%edx), %eax; ret
f_lock_btr: lock btrl $1, (%edx); ret
f_rep_movs_to: movl %edx, %edi; movl $acc_scratch, %esi; movl $3, %ecx; rep movsb; ret
f_rep_lods: movl %edx, %esi; movl $2, %ecx; rep lodsw; ret
/*
 * The fetch: code at EDX (the xAPIC page's registers read as code) may leave any ESP (MOV ESP, POP,
 * RET n) or pop a far frame: an IRET or RETF there pops the CS 08h and EFLAGS 2 pushed here (no VM
 * flag: chaos seed 6 op 935936, APR CFh, IRET into virtual-8086 mode, triple fault). Its return is
 * never trusted: the op ends through its recovery point, as after a fault (isr_bad_stack, vector ~0).
 */
f_fetch:    pushl $0x2
            pushl $SEL_CODE32
            call *%edx
            movl $-1, %esi
            jmp isr_bad_stack

/* ------------------------------------------------------------------ AP trampoline (SDM Vol. 3A 9.4.4) */
/* Copied to AP_TRAMPOLINE; the SIPI vector points at it. All APs share one boot stack under a lock
   until ap_boot() hands each its own (its index from its APIC ID; a restarted AP gets its old one). */
    AP_TRAMPOLINE
1:  movl $1, %eax
    xchgl %eax, ap_boot_lock
    testl %eax, %eax
    jz 2f
    pause
    jmp 1b
2:  movl $ap_boot_stack_top, %esp
    call ap_boot                    /* EAX = this CPU's stack top, EDX = its index */
    movl %eax, %esp
    movl $0, ap_boot_lock
    pushl %edx
    call ap_main
3:  cli
    hlt
    jmp 3b

/* ------------------------------------------------------------------ data */
    .data
    .align 16
    .global gdt, gdt_desc
gdt:
    .quad 0
    .quad 0x00cf9a000000ffff        /* 0x08 code32 flat */
    .quad 0x00cf92000000ffff        /* 0x10 data32 flat */
    .quad 0x00cf12000000ffff        /* 0x18 data32, not present (for #NP / #SS) */
    .quad 0x00009a000000ffff        /* 0x20 code16 */
gdt_end:
gdt_desc:
    .word gdt_end - gdt - 1
    .long gdt
    .global ap_boot_lock
ap_boot_lock: .long 0

    .macro ISRADDR n
    .long isr\n
    .endm
    .global isr_table
    .section .rodata
    .align 4
isr_table:
    .set i, 0
    .rept 256
    ISRADDR %i
    .set i, i + 1
    .endr

    .bss
    .align 16
    .global acc_scratch
acc_scratch: .space 64
    .space 4096
ap_boot_stack_top:
