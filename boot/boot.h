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
#define CR0_WP   (1 << 16)
#define CR0_PG   (1 << 31)
#define CR4_PAE  (1 << 5)
#define MSR_EFER 0xc0000080
#define EFER_LME (1 << 8)

/* The AP trampoline runs from this page; SIPI vector = its page number (SDM Vol. 3A 9.4.4). */
#define AP_TRAMPOLINE_ADDR 0x8000

#endif
