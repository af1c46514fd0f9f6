/* Constants shared by the assembly boot path (entry.S, ap_trampoline.S) and C. */
#ifndef HV_BOOT_H
#define HV_BOOT_H

#define BOOT_STACK_SIZE 16384
#define BOOT_CS64       0x08
#define BOOT_DS         0x10

#define PTE_P    (1 << 0)
#define PTE_W    (1 << 1)
#define PTE_U    (1 << 2)
#define PTE_PWT  (1 << 3)
#define PTE_PCD  (1 << 4)
#define PTE_PS   (1 << 7)

#define CR0_PE   (1 << 0)
#define CR0_NE   (1 << 5)
#define CR0_NW   (1 << 29)
#define CR0_CD   (1 << 30)
#define CR0_WP   (1 << 16)
#define CR0_PG   (1 << 31)
#define CR4_PAE  (1 << 5)
#define MSR_EFER 0xc0000080
#define EFER_LME (1 << 8)

/*
 * 32-bit protected mode to IA-32e mode (SDM Vol. 3A 10.8.5): CR4.PAE, CR3 = the PML4 (an immediate or
 * memory operand), EFER.LME, then CR0.PG with cr0_bits activates it; the caller's far jump into a
 * 64-bit code segment follows. The BSP (entry.S) and every AP (ap_trampoline.S) take this path.
 */
#define ENABLE_LONG_MODE(cr3_operand, cr0_bits)                                                       \
    movl %cr4, %eax; orl $CR4_PAE, %eax; movl %eax, %cr4;                                             \
    movl cr3_operand, %eax; movl %eax, %cr3;                                                          \
    movl $MSR_EFER, %ecx; rdmsr; orl $EFER_LME, %eax; wrmsr;                                          \
    movl %cr0, %eax; orl $(cr0_bits), %eax; movl %eax, %cr0

/* The AP trampoline runs from this page; SIPI vector = its page number (SDM Vol. 3A 9.4.4). */
#define AP_TRAMPOLINE_ADDR 0x8000

#endif
