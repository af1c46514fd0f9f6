/*
 * Application-processor trampoline. smp.c copies [ap_trampoline_start, ap_trampoline_end) to
 * AP_TRAMPOLINE_ADDR and fills ap_boot_params; a Startup IPI with vector AP_TRAMPOLINE_ADDR >> 12
 * starts the AP here in real mode at CS = vector << 8, IP = 0 (SDM Vol. 3A 9.4.4.1, 11.6.1).
 * Real mode -> protected mode -> IA-32e mode with the BSP's CR3 -> ap_params.entry(ap_params.arg)
 * on ap_params.stack. The code runs from the copy, so every address is taken relative to the copy.
 */
#include "boot.h"

#define REL(sym) (AP_TRAMPOLINE_ADDR + (sym) - ap_trampoline_start)

    .section .rodata
    .global ap_trampoline_start, ap_trampoline_end, ap_boot_params
    .align 16
    .code16
ap_trampoline_start:
    cli
    cld
    xorw %ax, %ax
    movw %ax, %ds
    lgdtl REL(tramp_gdtr)
    movl %cr0, %eax
    andl $~(CR0_CD | CR0_NW), %eax          /* INIT leaves caching off: CR0 = 60000010H (SDM Vol. 3A 9.1.1) */
    orl $CR0_PE, %eax
    movl %eax, %cr0
    ljmpl $0x08, $REL(tramp_pm32)

    .code32
tramp_pm32:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    ENABLE_LONG_MODE(REL(ap_boot_params + 0), CR0_PG | CR0_NE | CR0_WP)   /* ap_boot_params + 0: CR3 */
    ljmpl $0x18, $REL(tramp_lm64)

    .code64
tramp_lm64:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movq REL(ap_boot_params + 8), %rsp      /* stack top */
    movq REL(ap_boot_params + 24), %rdi     /* arg */
    movq REL(ap_boot_params + 16), %rax     /* entry */
    xorl %ebp, %ebp
    call *%rax
1:  cli
    hlt
    jmp 1b

    .align 16
tramp_gdt:
    .quad 0
    .quad 0x00cf9a000000ffff        /* 0x08: 32-bit code */
    .quad 0x00cf92000000ffff        /* 0x10: data */
    .quad 0x00af9a000000ffff        /* 0x18: 64-bit code */
tramp_gdt_end:
tramp_gdtr:
    .word tramp_gdt_end - tramp_gdt - 1
    .long REL(tramp_gdt)

    .align 8
/* struct ap_boot_params in smp.c: { u64 cr3; u64 stack; u64 entry; u64 arg; } */
ap_boot_params:
    .quad 0, 0, 0, 0
ap_trampoline_end:
