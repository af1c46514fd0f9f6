/*
 * mbtest: a multiboot kernel that checks the machine the hypervisor gives a loaded guest, then ends
 * the run with the HV_HC_GUEST_EXIT hypercall (status 0 when every step passed). Each step prints
 * "mbtest: step NAME: PASS|FAIL detail" on COM1:
 *   multiboot   EAX magic, information block with memory map and command line
 *   memmap      one usable range from 1 MiB up to the hypervisor's region (reserved, at the top of RAM),
 *               mem_upper its size, this kernel in usable RAM; prints mem_lower/mem_upper and the map
 *   bss         1 MiB of BSS (over where the loader put the modules, linked at 1 MiB) reads zero
 *   cpuid       hypervisor bit and "hvtrace" leaves; VMX and SVM hidden; CPUID.1:ECX.OSXSAVE follows
 *               this guest's CR4.OSXSAVE (0 at entry, 1 once set), not the host's
 *   msr         a VMX capability MSR raises #GP; EFER.SVME reads 0
 *   cr4         CR4.VMXE reads 0
 *   exceptions  #UD (intercepted and reflected), #BP and #DE delivered through this kernel's IDT
 *   isolation   a write and a read of hypervisor memory fault with #GP (blocked and recorded)
 *   hypercall   PING answers "HVTR"
 *   apic        stores to the xAPIC page (TPR) are trapped and emulated, a read between them is not:
 *               two more stage-2 fault exits, and the values read back from the real APIC
 *   ap          with "cpus=N" (N > 1) on the command line: INIT-SIPI-SIPI to all other CPUs starts
 *               each in real mode at the trampoline; every AP reaches 32-bit code, sees the hypervisor
 *               bit and gets an answer to the PING hypercall (it runs virtualized). With "x2apic" the
 *               BSP switches its APIC to x2APIC mode and sends them through the ICR MSR (0x830)
 */
#include <hv/abi.h>

typedef unsigned int u32;
typedef unsigned long long u64;
typedef unsigned short u16;
typedef unsigned char u8;

#define COM1 0x3f8
/* Where the hypervisor's region starts: the end of the usable range from 1 MiB (check_memmap). */
static u32 hv_region;

extern u8 __image_start[], __image_end[];
extern const u32 isr_table[32];

struct trap_frame {
    u32 edi, esi, ebp, esp, ebx, edx, ecx, eax;
    u32 vector, error, eip, cs, eflags;
};

/* Expected-fault recovery: a step arms mbtest_fixup with the address to resume at (ARM / LAND below). */
volatile u32 mbtest_fixup;
static volatile u32 fault_vector, fault_count;
static u32 failures;
static int amd;

static inline void outb(u16 port, u8 v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline u8 inb(u16 port)
{
    u8 v;
    __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

static void putc(char c)
{
    while (!(inb(COM1 + 5) & 0x20))
        ;
    outb(COM1, (u8)c);
}

static void puts(const char *s)
{
    while (*s)
        putc(*s++);
}

static void puthex(u32 v)
{
    puts("0x");
    for (int i = 28; i >= 0; i -= 4)
        putc("0123456789abcdef"[(v >> i) & 15]);
}

static void puthex64(u64 v)
{
    puts("0x");
    for (int i = 60; i >= 0; i -= 4)
        putc("0123456789abcdef"[(v >> i) & 15]);
}

static void step(const char *name, int ok, const char *detail)
{
    puts("mbtest: step ");
    puts(name);
    puts(ok ? ": PASS " : ": FAIL ");
    puts(detail);
    putc('\n');
    failures += !ok;
}

void trap(struct trap_frame *f);
void trap(struct trap_frame *f)
{
    fault_count++;
    fault_vector = f->vector;
    if (mbtest_fixup) {
        f->eip = mbtest_fixup;
        mbtest_fixup = 0;
        return;
    }
    puts("mbtest: unexpected exception ");
    puthex(f->vector);
    puts(" at EIP ");
    puthex(f->eip);
    puts(" error ");
    puthex(f->error);
    putc('\n');
    for (;;)
        __asm__ volatile("cli; hlt");
}

/*
 * Bracket an instruction sequence that should fault: ARM points the fixup past it, LAND disarms it
 * when nothing faulted. The vector is in fault_vector afterwards (~0 if none).
 */
#define ARM "movl $1f, mbtest_fixup\n\t"
#define LAND "\n\tmovl $0, mbtest_fixup\n1:"

static void setup_idt(void)
{
    static u64 idt[32] __attribute__((aligned(8)));
    for (int i = 0; i < 32; i++) {
        u32 h = isr_table[i];
        /* 32-bit interrupt gate, DPL 0, present (SDM Vol. 3A 7.11, Figure 7-2) */
        idt[i] = (h & 0xffff) | (u64)0x10 << 16 | (u64)0x8e00 << 32 | (u64)(h >> 16) << 48;
    }
    struct {
        u16 limit;
        u32 base;
    } __attribute__((packed)) idtr = { sizeof(idt) - 1, (u32)idt };
    __asm__ volatile("lidt %0" : : "m"(idtr));
}

static void cpuid(u32 leaf, u32 *a, u32 *b, u32 *c, u32 *d)
{
    __asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(0));
}

static u32 hypercall(u32 fn, u32 arg)
{
    u32 ret;
    if (amd)
        __asm__ volatile("vmmcall" : "=a"(ret) : "a"(fn), "b"(arg) : "memory");
    else
        __asm__ volatile("vmcall" : "=a"(ret) : "a"(fn), "b"(arg) : "memory");
    return ret;
}

struct mb_info {
    u32 flags, mem_lower, mem_upper, boot_device, cmdline, mods_count, mods_addr, syms[4];
    u32 mmap_length, mmap_addr;
};
struct mb_mmap {
    u32 size;
    u64 addr, len;
    u32 type;
} __attribute__((packed));

/* The memory-map type covering addr (0 if none). */
static u32 map_type(const struct mb_info *mbi, u64 addr)
{
    for (u32 at = mbi->mmap_addr; at < mbi->mmap_addr + mbi->mmap_length;) {
        const struct mb_mmap *e = (const struct mb_mmap *)at;
        if (addr >= e->addr && addr - e->addr < e->len)
            return e->type;
        at += e->size + 4;
    }
    return 0;
}

static void check_multiboot(u32 magic, const struct mb_info *mbi)
{
    int ok = magic == 0x2badb002 && (mbi->flags & (1u << 6)) && (mbi->flags & (1u << 2));
    step("multiboot", ok, ok ? (const char *)mbi->cmdline : "bad magic or no memory map / cmdline");
}

static void putdec(u32 v)
{
    char buf[12];
    int n = 0;
    do
        buf[n++] = (char)('0' + v % 10);
    while ((v /= 10) && n < 11);
    while (n)
        putc(buf[--n]);
}

static void check_memmap(const struct mb_info *mbi)
{
    u64 from_1m = 0, end_1m = 0;
    puts("mbtest: mem_lower=");
    putdec(mbi->mem_lower);
    puts(" mem_upper=");
    putdec(mbi->mem_upper);
    putc('\n');
    for (u32 at = mbi->mmap_addr; at < mbi->mmap_addr + mbi->mmap_length;) {
        const struct mb_mmap *e = (const struct mb_mmap *)at;
        puts("mbtest: mmap ");
        puthex64(e->addr);
        puts(" len ");
        puthex64(e->len);
        puts(" type ");
        putdec(e->type);
        putc('\n');
        if (e->type == 1 && e->addr <= 0x100000 && e->addr + e->len > 0x100000) {
            from_1m = e->addr;
            end_1m = e->addr + e->len;
        }
        at += e->size + 4;
    }
    hv_region = end_1m < 0x100000000ull ? (u32)end_1m : 0;
    puts("mbtest: hypervisor region at ");
    puthex(hv_region);
    putc('\n');
    u32 hv = hv_region ? map_type(mbi, hv_region) : 0, self = map_type(mbi, (u32)__image_start);
    int upper = end_1m && mbi->mem_upper == (u32)((end_1m - 0x100000) >> 10);
    step("memmap", hv == 2 && self == 1 && from_1m == 0x100000 && upper,
         hv != 2        ? "no reserved hypervisor region after the usable RAM from 1 MiB"
         : self != 1    ? "this kernel is not in usable RAM"
         : !upper       ? "mem_upper is not the usable RAM from 1 MiB"
                        : "one usable range from 1 MiB to the reserved hypervisor region, mem_upper right");
}

/*
 * 1 MiB of BSS: linked at 1 MiB, it covers where loaders put the modules (this kernel's own file among
 * them), so the hypervisor must move them before loading; the loader zeroes it (Multiboot 3.1.3).
 */
static volatile u8 big_bss[0x100000];

static void check_bss(void)
{
    u32 nonzero = 0;
    for (u32 i = 0; i < sizeof(big_bss); i++)
        nonzero += big_bss[i] != 0;
    step("bss", nonzero == 0, nonzero ? "BSS not zeroed" : "1 MiB of BSS zeroed by the loader");
}

static void check_cpuid(void)
{
    u32 a, b, c, d, sig[3];
    cpuid(1, &a, &b, &c, &d);
    int hv_bit = (c >> 31) & 1, vmx = (c >> 5) & 1;
    cpuid(0x40000000, &a, &sig[0], &sig[1], &sig[2]);
    int named = sig[0] == 0x72747668 && sig[1] == 0x00656361 && sig[2] == 0;  /* "hvtrace\0" */
    cpuid(0x80000001, &a, &b, &c, &d);
    int svm = (c >> 2) & 1;
    /* OSXSAVE mirrors CR4.OSXSAVE (SDM Vol. 2A CPUID, Table 3-10) */
    cpuid(1, &a, &b, &c, &d);
    int osxsave_off = !((c >> 27) & 1), xsave = (c >> 26) & 1, osxsave_on = 1;
    if (xsave) {
        u32 cr4;
        __asm__ volatile("movl %%cr4, %0; orl $0x40000, %0; movl %0, %%cr4" : "=&r"(cr4));
        cpuid(1, &a, &b, &c, &d);
        osxsave_on = (c >> 27) & 1;
        __asm__ volatile("movl %%cr4, %0; andl $~0x40000, %0; movl %0, %%cr4" : "=&r"(cr4));
    }
    step("cpuid", hv_bit && named && !vmx && !svm && osxsave_off && osxsave_on,
         !hv_bit ? "no hypervisor bit" : !named ? "no hvtrace leaves" : vmx || svm ? "VMX/SVM visible"
         : !osxsave_off || !osxsave_on ? "OSXSAVE does not follow the guest's CR4" : "hidden, OSXSAVE = guest CR4");
}

static void check_msr(void)
{
    u32 lo = 0, hi = 0;
    fault_vector = ~0u;
    __asm__ volatile(ARM "rdmsr" LAND : "=a"(lo), "=d"(hi) : "c"(0x480) : "memory");   /* IA32_VMX_BASIC */
    int vec = (int)fault_vector;
    __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(0xc0000080));  /* EFER */
    step("msr", vec == 13 && !(lo & (1u << 12)), vec != 13 ? "VMX_BASIC did not #GP" : "EFER.SVME hidden");
}

static void check_cr4(void)
{
    u32 cr4;
    __asm__ volatile("movl %%cr4, %0" : "=r"(cr4));
    step("cr4", !(cr4 & (1u << 13)), "CR4.VMXE reads 0");
}

static void check_exceptions(void)
{
    int ud, bp, de;
    fault_vector = ~0u;
    __asm__ volatile(ARM "ud2" LAND ::: "memory");
    ud = (int)fault_vector;
    fault_vector = ~0u;
    __asm__ volatile(ARM "int3" LAND ::: "memory");
    bp = (int)fault_vector;
    fault_vector = ~0u;
    u32 zero = 0;
    __asm__ volatile(ARM "xorl %%edx, %%edx; movl $1, %%eax; divl %0" LAND : : "r"(zero) : "eax", "edx", "memory");
    de = (int)fault_vector;
    step("exceptions", ud == 6 && bp == 3 && de == 0, "#UD #BP #DE delivered to the guest");
}

/*
 * The first word of the hypervisor's region (found by check_memmap). Removed from the stage-2 map: the write must not land,
 * both accesses must fault (#GP reflected by the hypervisor), and each is a security record.
 */
static void check_isolation(void)
{
    volatile u32 *hv = (volatile u32 *)hv_region;
    u32 seen = 0;
    fault_vector = ~0u;
    __asm__ volatile(ARM "movl $0xdeadbeef, (%0)" LAND : : "r"(hv) : "memory");
    int w = (int)fault_vector;
    fault_vector = ~0u;
    __asm__ volatile(ARM "movl (%1), %0" LAND : "=r"(seen) : "r"(hv) : "memory");
    int r = (int)fault_vector;
    step("isolation", hv_region && w == 13 && r == 13, "write and read of hypervisor memory blocked (#GP)");
}

static void check_hypercall(void)
{
    step("hypercall", hypercall(HV_HC_PING, 0) == HV_HC_PING_REPLY, "PING");
}

/* The hypervisor traps xAPIC stores (to emulate the guest's INIT/SIPI) and performs the others. */
static void check_apic(void)
{
    volatile u32 *tpr = (volatile u32 *)0xfee00080u;
    u32 before = hypercall(HV_HC_EXIT_COUNT, HV_EXIT_STAGE2_FAULT);
    *tpr = 0x10;
    u32 back = *tpr & 0xff;
    *tpr = 0;
    u32 after = hypercall(HV_HC_EXIT_COUNT, HV_EXIT_STAGE2_FAULT);
    u32 zero = *tpr & 0xff;
    step("apic", after == before + 2 && back == 0x10 && zero == 0,
         after == before + 2 ? "TPR stores emulated, reads direct" : "stores not trapped (or a read faulted)");
}

/* ---- AP start-up (SDM Vol. 3A 9.4.4 "MP Initialization Example", 11.6.1 ICR) ---- */
#define AP_TRAMPOLINE 0x7000u
#define ICR_LO ((volatile u32 *)0xfee00300u)
#define ICR_HI ((volatile u32 *)0xfee00310u)
#define ICR_ALL_BUT_SELF (3u << 18)
#define ICR_INIT_ASSERT (0x5u << 8 | 1u << 14 | 1u << 15)
#define ICR_STARTUP (0x6u << 8)

extern u8 ap_trampoline[], ap_trampoline_end[], ap_gdtr[];
static volatile u32 aps_alive, aps_virtualized;

void ap_main(void);
void ap_main(void)
{
    u32 a, b, c, d;
    cpuid(1, &a, &b, &c, &d);
    int ok = (c >> 31) & 1 && hypercall(HV_HC_PING, 0) == HV_HC_PING_REPLY;
    __atomic_fetch_add(&aps_alive, 1, __ATOMIC_SEQ_CST);
    if (ok)
        __atomic_fetch_add(&aps_virtualized, 1, __ATOMIC_SEQ_CST);
}

static void delay(u32 loops)
{
    for (volatile u32 i = 0; i < loops; i++)
        __asm__ volatile("pause");
}

static int has_word(const char *cmdline, const char *word)
{
    for (const char *p = cmdline; *p; p++) {
        const char *a = p, *b = word;
        while (*b && *a == *b)
            a++, b++;
        if (!*b && (p == cmdline || p[-1] == ' ') && (!*a || *a == ' '))
            return 1;
    }
    return 0;
}

static inline void wrmsr(u32 msr, u64 v)
{
    __asm__ volatile("wrmsr" : : "c"(msr), "a"((u32)v), "d"((u32)(v >> 32)) : "memory");
}

static inline u64 rdmsr(u32 msr)
{
    u32 lo, hi;
    __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
    return (u64)hi << 32 | lo;
}

/* Send one IPI to all CPUs but this one, through the xAPIC ICR page or the x2APIC ICR MSR. */
static void ipi_all_but_self(u32 icr_lo, int x2apic)
{
    if (x2apic) {
        wrmsr(0x830, ICR_ALL_BUT_SELF | icr_lo);   /* one 64-bit write, destination ignored (SDM 11.12.9) */
    } else {
        *ICR_HI = 0;
        *ICR_LO = ICR_ALL_BUT_SELF | icr_lo;
    }
}

/* The number after "cpus=" in the command line, 1 if absent. */
static u32 cmdline_cpus(const char *cmdline)
{
    for (const char *p = cmdline; *p; p++) {
        if (p[0] == 'c' && p[1] == 'p' && p[2] == 'u' && p[3] == 's' && p[4] == '=') {
            u32 n = 0;
            for (p += 5; *p >= '0' && *p <= '9'; p++)
                n = n * 10 + (u32)(*p - '0');
            return n ? n : 1;
        }
    }
    return 1;
}

static void check_ap_startup(const struct mb_info *mbi)
{
    u32 cpus = cmdline_cpus((const char *)mbi->cmdline);
    if (cpus < 2) {
        puts("mbtest: step ap: SKIP (one CPU: no cpus=N on the command line)\n");
        return;
    }
    /* the trampoline and, inside it, the descriptor of this kernel's GDT (the one the loader gave) */
    u8 *dst = (u8 *)AP_TRAMPOLINE;
    for (u8 *src = ap_trampoline; src < ap_trampoline_end; src++)
        *dst++ = *src;
    struct {
        u16 limit;
        u32 base;
    } __attribute__((packed)) gdtr;
    __asm__ volatile("sgdt %0" : "=m"(gdtr));
    *(u32 *)(AP_TRAMPOLINE + (u32)(ap_gdtr - ap_trampoline) + 2) = gdtr.base;
    int x2apic = has_word((const char *)mbi->cmdline, "x2apic");
    if (x2apic) {
        u32 a, b, c, d;
        cpuid(1, &a, &b, &c, &d);
        if (!((c >> 21) & 1)) {
            step("ap", 0, "x2apic asked for, but CPUID.1:ECX.x2APIC[21] is 0");
            return;
        }
        wrmsr(0x1b, rdmsr(0x1b) | (1u << 10));      /* IA32_APIC_BASE.EXTD: x2APIC mode (SDM 11.12.1) */
    }
    ipi_all_but_self(ICR_INIT_ASSERT, x2apic);
    delay(100000);
    for (int i = 0; i < 2; i++) {
        ipi_all_but_self(ICR_STARTUP | (AP_TRAMPOLINE >> 12), x2apic);
        delay(10000);
    }
    for (u32 spins = 0; aps_alive < cpus - 1 && spins < 200000000u; spins++)
        __asm__ volatile("pause");
    step("ap", aps_alive == cpus - 1 && aps_virtualized == cpus - 1,
         aps_alive != cpus - 1 ? "not every AP came up"
         : x2apic ? "every AP started by INIT-SIPI-SIPI (x2APIC ICR MSR) runs virtualized"
                  : "every AP started by INIT-SIPI-SIPI runs virtualized");
}

void mbtest_main(u32 magic, const struct mb_info *mbi);
void mbtest_main(u32 magic, const struct mb_info *mbi)
{
    u32 a, b, c, d;
    cpuid(0, &a, &b, &c, &d);
    amd = b == 0x68747541;      /* "Auth"enticAMD */
    setup_idt();
    puts("mbtest: multiboot guest kernel running\n");
    check_multiboot(magic, mbi);
    check_memmap(mbi);
    check_bss();
    check_cpuid();
    check_msr();
    check_cr4();
    check_exceptions();
    check_isolation();
    check_hypercall();
    check_apic();
    check_ap_startup(mbi);
    puts(failures ? "mbtest: FAILED\n" : "mbtest: all steps passed\n");
    hypercall(HV_HC_GUEST_EXIT, failures ? HV_STATUS_FAIL : HV_STATUS_PASS);
    for (;;)
        __asm__ volatile("cli; hlt");
}
