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
    .macro ISR n
isr\n:
    pushl $\n
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
f_fetch:    call *%edx; ret

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
