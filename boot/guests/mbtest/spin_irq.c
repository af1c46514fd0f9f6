/*
 * "spin_irq" (tests/integration/test_gdbstub_spin.py): a guest that computes with interrupts on and
 * makes no exit of its own. The PIT (channel 0, mode 2, 100 Hz) raises IRQ 0 on the 8259, remapped
 * to vector 0x20 and delivered through the BSP's LINT0 (ExtINT, as the firmware left it); the handler
 * acknowledges it with a non-specific EOI on port 0x20. The hypervisor intercepts none of these ports
 * and no instruction of the loop, so only its own periodic exits (VT-x: the preemption timer; SVM:
 * INTR while its gdb stub is on) can bring it out of the guest. Prints "mbtest: spin_irq: N ticks"
 * every 100 interrupts on COM1 (not intercepted either). Never returns; the host ends the run.
 */
#include "guest.h"
#include "spin_irq.h"

#define PIT_HZ 1193182u
#define TICK_HZ 100u
#define VECTOR 0x20u

void spin_irq_isr(void);
volatile u32 spin_irq_ticks;

/* IRQ 0: count, non-specific EOI to the master 8259 (OCW2 20h), IRET. */
__asm__(".text\n"
        "spin_irq_isr:\n"
        "    pushl %eax\n"
        "    lock incl spin_irq_ticks\n"
        "    movb $0x20, %al\n"
        "    outb %al, $0x20\n"
        "    popl %eax\n"
        "    iret\n");

static u64 idt[VECTOR + 1] __attribute__((aligned(8)));

/* This kernel's 32 exception gates, then vector 0x20: the same 32-bit interrupt gate on this CS. */
static void load_idt(void)
{
    struct {
        u16 limit;
        u32 base;
    } __attribute__((packed)) idtr;
    __asm__ volatile("sidt %0" : "=m"(idtr));
    const u64 *old = (const u64 *)idtr.base;
    for (u32 i = 0; i < 32 && i * 8 < idtr.limit; i++)
        idt[i] = old[i];
    u32 h = (u32)spin_irq_isr, cs;
    __asm__ volatile("movl %%cs, %0" : "=r"(cs));
    idt[VECTOR] = (h & 0xffff) | (u64)cs << 16 | (u64)0x8e00 << 32 | (u64)(h >> 16) << 48;
    idtr.limit = sizeof(idt) - 1;
    idtr.base = (u32)idt;
    __asm__ volatile("lidt %0" : : "m"(idtr));
}

/* 8259 initialisation (ICW1-4): master at vector 0x20, slave at 0x28 on IRQ 2; only IRQ 0 unmasked. */
static void pic_init(void)
{
    outb(0x20, 0x11);
    outb(0xa0, 0x11);
    outb(0x21, VECTOR);
    outb(0xa1, VECTOR + 8);
    outb(0x21, 4);
    outb(0xa1, 2);
    outb(0x21, 1);
    outb(0xa1, 1);
    outb(0x21, 0xfe);
    outb(0xa1, 0xff);
}

void spin_irq_run(void)
{
    load_idt();
    pic_init();
    u32 div = PIT_HZ / TICK_HZ;
    outb(0x43, 0x34);           /* channel 0, lobyte/hibyte, mode 2 (rate generator) */
    outb(0x40, (u8)div);
    outb(0x40, (u8)(div >> 8));
    puts("mbtest: spin_irq: PIT IRQ 0 at 100 Hz, spinning with interrupts on\n");
    __asm__ volatile("sti");
    for (u32 seen = 0;;) {
        u32 now = spin_irq_ticks;
        if (now - seen >= TICK_HZ) {
            seen = now;
            puts_dec("mbtest: spin_irq: ", now);
            puts(" ticks\n");
        }
    }
}
