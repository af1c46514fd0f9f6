/*
 * mbtest: the project's own multiboot v1 kernel for the guest loader (ELF32, no a.out kludge: the
 * loader must use the program headers). Entered in 32-bit protected mode with paging off, EAX = the
 * multiboot magic, EBX = the information block (Multiboot 0.6.96, 3.2). Exception stubs for vectors
 * 0-31 go to trap() in mbtest.c with a struct trap_frame.
 */
#include "entry.inc"

    MULTIBOOT_HEADER

    .text
    .code32
    .global _start, isr_table, ap_trampoline, ap_trampoline_end, ap_gdtr, ap_stack_top
_start:
    cli
    movl $stack_top, %esp
    pushl %ebx
    pushl %eax
    call mbtest_main
1:  hlt
    jmp 1b

/*
 * The AP trampoline, copied by mbtest to AP_TRAMPOLINE (a page below 1 MiB, the SIPI vector's page):
 * an AP wakes in real mode with CS = vector << 8 (SDM Vol. 3A 9.4.4), loads mbtest's GDT (its
 * descriptor sits in the trampoline, addressed through CS), enables protection and jumps to ap_pm32.
 * First, still in real mode: RDMSR of IA32_VMX_BASIC (no VMX for the guest: #GP, raised by the
 * hypervisor) is delivered through the real-mode IVT, which pushes FLAGS, CS and IP and no error code
 * (SDM Vol. 3A 20.1.4); the handler keeps the word on top of its stack in ap_gp_ip (mbtest.c checks
 * it is the RDMSR's IP) and steps over the 2-byte RDMSR.
 */
    .code16
ap_trampoline:
    cli
    movw %cs, %ax
    movw %ax, %ds
    movw %ax, %ss
    movw $0xffe, %sp                /* the top of the trampoline's page */
    xorw %ax, %ax
    movw %ax, %es
    movw $(ap_gp_handler - ap_trampoline), %es:0x34      /* IVT[13] = CS:ap_gp_handler */
    movw %cs, %es:0x36
    movl $0x480, %ecx
ap_gp_rdmsr:
    rdmsr
    lgdtl ap_gdtr - ap_trampoline
    movl %cr0, %eax
    orl $1, %eax
    movl %eax, %cr0
    ljmpl $0x10, $ap_pm32
ap_gp_handler:
    movw %sp, %bp
    movw (%bp), %ax                 /* IP, or an error code if one was (wrongly) pushed */
    movw %ax, ap_gp_ip - ap_trampoline
    addw $2, (%bp)
    iret
    .global ap_gp_ip, ap_gp_rdmsr
ap_gp_ip:
    .word 0xffff
    .align 4
ap_gdtr:
    .word 4 * 8 - 1
    .long 0                         /* filled in by mbtest: the GDT's address */
ap_trampoline_end:
    .code32
ap_pm32:
    movw $0x18, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movl $ap_stack_top, %esp
    call ap_main
2:  cli
    hlt
    jmp 2b

/*
 * The #DF task (mbtest.c check_double_fault_task): entered through the IDT's task gate with the #DF
 * error code on its stack; it sends the old task past its faulting instruction and returns by IRET,
 * a task switch back (EFLAGS.NT). Entered again, it resumes after the IRET: the jump.
 */
    .global df_task_entry
df_task_entry:
    incl df_count
    addl $4, %esp
    movl df_resume_eip, %eax
    movl %eax, main_tss + 0x20
    iret
    jmp df_task_entry

    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    ISR_ERRCODE \n
    .endr

    .section .rodata
    .align 4
isr_table:
    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .long isr\n
    .endr

    .bss
    .align 16
    .space 16384
stack_top:
    .space 4096
ap_stack_top:
