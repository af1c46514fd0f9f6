/*
 * Multiboot v1 entry: 32-bit protected mode, paging off (Multiboot spec 3.2 "Machine state").
 * Builds a 4 GiB identity map with 2 MiB pages (guest RAM above it is reached through core/guest/guest_mem.c's
 * window at PDPT[4]), enters long mode (SDM Vol. 3A 10.8.5 "Initializing
 * IA-32e Mode"), copies the image to the top of RAM (boot_relocate, core/lib/relocate.c), switches to the
 * copy's page tables, GDT and stack, and calls hv_main(magic, mbi) there. Only this file's 32-bit code
 * runs at the link address (1 MiB); everything from long_mode_entry on is position independent.
 */
#include "boot.h"

#define MB_MAGIC        0x1BADB002
/* bit 0: modules page aligned, bit 1: memory map, bit 16: address fields valid (a.out kludge) */
#define MB_FLAGS        ((1 << 0) | (1 << 1) | (1 << 16))

    .section .multiboot, "a"
    .align 4
multiboot_header:
    .long MB_MAGIC
    .long MB_FLAGS
    .long -(MB_MAGIC + MB_FLAGS)
    .long multiboot_header          /* header_addr */
    .long __image_start             /* load_addr */
    .long __load_end                /* load_end_addr */
    .long __image_end               /* bss_end_addr: the loader zeroes the BSS */
    .long _start32                  /* entry_addr */

    .section .text.boot, "ax"
    .code32
    .global _start32
_start32:
    cli
    cld
    movl $(boot_stack + BOOT_STACK_SIZE), %esp
    movl %eax, boot_mb_magic
    movl %ebx, boot_mb_info

    /* Long mode present? CPUID.80000001H:EDX.LM[bit 29] */
    movl $0x80000000, %eax
    cpuid
    cmpl $0x80000001, %eax
    jb no_long_mode
    movl $0x80000001, %eax
    cpuid
    btl $29, %edx
    jnc no_long_mode

    /*
     * PML4[0] -> PDPT, PDPT[0..3] -> four page directories of 2 MiB pages = 0..4 GiB. U/S is set so the
     * self-test guest, which shares these tables (blue pill), can run its CPL3 steps; SMEP/SMAP stay off.
     */
    movl $boot_pml4, %edi
    xorl %eax, %eax
    movl $(3 * 1024), %ecx          /* PML4 + PDPT + spare page, zeroed */
    rep stosl
    movl $boot_pdpt, %eax
    orl $(PTE_P | PTE_W | PTE_U), %eax
    movl %eax, boot_pml4
    movl $boot_pd, %edi
    xorl %ecx, %ecx
1:  movl %ecx, %eax
    shll $21, %eax                  /* low 32 bits of the 2 MiB frame */
    orl $(PTE_P | PTE_W | PTE_U | PTE_PS), %eax
    cmpl $(3 * 512), %ecx           /* 3..4 GiB holds LAPIC/IOAPIC/PCI MMIO: uncached */
    jb 2f
    orl $(PTE_PWT | PTE_PCD), %eax
2:  movl %eax, (%edi, %ecx, 8)
    movl $0, 4(%edi, %ecx, 8)
    incl %ecx
    cmpl $(4 * 512), %ecx
    jb 1b
    movl $boot_pdpt, %edi
    movl $boot_pd, %eax
    orl $(PTE_P | PTE_W | PTE_U), %eax
    xorl %ecx, %ecx
3:  movl %eax, (%edi, %ecx, 8)
    movl $0, 4(%edi, %ecx, 8)
    addl $4096, %eax
    incl %ecx
    cmpl $4, %ecx
    jb 3b

    /* GRUB leaves CR0.NE clear; VMX requires it set (CR0 FIXED0), so it is set for every CPU here. */
    ENABLE_LONG_MODE($boot_pml4, CR0_PG | CR0_PE | CR0_NE | CR0_WP)

    lgdt boot_gdtr
    ljmp $BOOT_CS64, $long_mode_entry

no_long_mode:
    movl $no_lm_msg, %esi
4:  lodsb
    testb %al, %al
    jz 5f
    outb %al, $0xe9
    movw $0x3f8, %dx
    outb %al, %dx
    jmp 4b
5:  hlt
    jmp 5b

    .code64
long_mode_entry:
    movw $BOOT_DS, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    xorw %ax, %ax
    movw %ax, %fs
    movw %ax, %gs
    leaq (boot_stack + BOOT_STACK_SIZE)(%rip), %rsp
    xorl %ebp, %ebp
    movl boot_mb_info(%rip), %edi
    call boot_relocate              /* the copy at the top of RAM; returns its slide (0: not moved) */
    /* The copy's page tables (boot_relocate pointed them at themselves), then its code. */
    leaq boot_pml4(%rip), %rcx
    addq %rax, %rcx
    movq %rcx, %cr3
    leaq relocated_entry(%rip), %rcx
    addq %rax, %rcx
    jmp *%rcx
relocated_entry:
    lgdt boot_gdtr(%rip)            /* the copy's GDT (its base was relocated); same selectors */
    leaq (boot_stack + BOOT_STACK_SIZE)(%rip), %rsp
    xorl %ebp, %ebp
    movl boot_mb_magic(%rip), %edi
    movl boot_mb_info(%rip), %esi
    call hv_main
    /* hv_main never returns; if it ever did, stop visibly. */
6:  cli
    hlt
    jmp 6b

    .section .rodata
no_lm_msg:
    .asciz "hvtrace: this CPU has no long mode (CPUID.80000001H:EDX.LM=0)\nHVTRACE STATUS code=1 result=fail reason=no_long_mode\n"

    .align 16
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff        /* 0x08: 64-bit code, DPL 0 */
    .quad 0x00cf92000000ffff        /* 0x10: data, DPL 0 */
boot_gdt_end:
    .global boot_gdtr
boot_gdtr:
    .word boot_gdt_end - boot_gdt - 1
    .quad boot_gdt

    .data
    .global boot_mb_magic, boot_mb_info
boot_mb_magic: .long 0
boot_mb_info:  .long 0

    .bss
    .align 4096
    .global boot_pml4, boot_pdpt
boot_pml4:  .skip 4096
boot_pdpt:  .skip 4096
            .skip 4096
boot_pd:    .skip 4 * 4096
    .align 16
    .global boot_stack
boot_stack: .skip BOOT_STACK_SIZE
