/*
 * chaos: a seeded, reproducible hostile guest (multiboot v1, ELF32, 32-bit protected mode, paging off).
 * Every CPU runs `ops=` random privileged operations drawn from the enabled op classes; the parameters
 * of op i on CPU n are a pure function of (seed, n, i) (splitmix64), so the same seed gives the same
 * sequence per CPU whatever the timing, and its checksum is printed. Every fault is handled: each op
 * runs with a recovery point (__builtin_setjmp); trap() counts the vector and resumes there; NMIs are
 * counted and return. After each op the state it may have changed is put back (CR0/CR3/CR4/XCR0, EFER,
 * segments, APIC registers).
 *
 * Command line: "chaos seed=N ops=M cpus=C classes=LIST" where LIST is comma-separated class names,
 * "default", "all", or "-name" to drop one (e.g. classes=default,forge or classes=all,-apicx).
 * Output on COM1: "chaos: start ...", "chaos: cpu N progress ops=K" every 2^16 ops, at the end one line per CPU
 *   chaos: cpu N ops=... checksum=0x... hv_tried=... hv_gp=... nmi=... faults: #GP=... v48=...
 * and "chaos: done ..." with the totals; then the exit code (0 when nothing unexpected happened) on the
 * isa-debug-exit port HV_DEBUG_EXIT_PORT, the run's own end (hv/core/guest_io.c: guest_debug_exit).
 *
 * Ports never touched (the guest's own devices and ports whose use would end or reset the machine: a
 * legitimate end, not chaos): COM1, the debug-exit port, ACPI PM1a_CNT (from the FADT), reset ports
 * (0x92, 0x60/0x64, 0xCF9), Bochs' BIOS/VGABIOS panic and shutdown ports; PCI config (0xCF8-0xCFF) and
 * QEMU fw_cfg (0x510-0x51B) are left alone too: both can make devices write guest-physical memory
 * behind the stage-2 tables (DMA, no IOMMU), see the README. So are the PIC command ports 0x20/0xA0:
 * Bochs panics on the ICW/OCW sequences it does not implement ("write to port 0x20 = 0x45").
 */
#include <hv/abi.h>

#include "guest.h"

#define APIC 0xfee00000u
#define AP_TRAMPOLINE 0x7000u
#define MAXCPU 16
#define CPU_STACK 16384            /* entry.S CPU_STACK */

/* ------------------------------------------------------------------------------------ op classes */
enum {
    C_CPUID, C_MSRR, C_MSRW, C_CR, C_XCR, C_VIRT, C_IO, C_HVMEM, C_APIC, C_APICX, C_IPI, C_SMC, C_INV,
    C_EXC, C_FORGE, C_IOCH, C_CR4, C_APICR, C_INIT, C_XMC, C_NCLASS
};
static const char *const class_names[C_NCLASS] = {
    "cpuid", "msrr", "msrw", "cr", "xcr", "virt", "io", "hvmem", "apic", "apicx", "ipi", "smc", "inv",
    "exc", "forge", "ioch", "cr4", "apicr", "init", "xmc",
};
/*
 * Every class is in the default mask. The last ones in, each after the hypervisor survived it (issue 13):
 * forge and ioch (the private channel), cr4 (CR0/CR4 writes intercepted under SVM), init (the INIT
 * latch), xmc (an unsized exiting instruction runs again), apicr (the xAPIC write policy; Bochs reports
 * its APIC's misaligned-read panic) and apicx (code in the xAPIC page runs from a register's bytes 0-3
 * only, the page after it is #UD). See the README for what each one found.
 */
#define DEFAULT_CLASSES ((1u << C_NCLASS) - 1)

/* ---------------------------------------------------------------------------------------- per CPU */
struct cpu {
    void *jb[5];                   /* recovery point of the running op */
    volatile u32 armed;
    volatile u32 hv_op;            /* the running op touches hypervisor memory: its #GP counts */
    u32 apic_id;
    volatile u32 next_op;          /* ops started; survives INIT (in memory) */
    volatile u32 done;
    u64 checksum;
    u32 faults[256];
    u32 per_class[C_NCLASS];
    u32 hv_tried, hv_gp;
    u32 unexpected, unexpected_vec, unexpected_eip;
    u32 bad_stack;                 /* vectors taken with ESP off every stack (entry.S isr_bad_stack) */
    volatile u32 cur_cls, in_op;               /* the op running now (for a CPU that never finished) */
    u32 nmi_sent, init_ok, init_fail, init_skip;
    volatile u32 joins;
    volatile u32 park_req, parked, park_spins;
};
/*
 * Each CPU's self-modified code on a page of its own, away from every other CPU's and from the data the
 * ops write all the time: on a page holding translated code QEMU's TCG takes its slow path for every
 * store and drops the page's translations, so counters next to the code (as in struct cpu before) made
 * the run ~1000x slower after a few minutes.
 */
static u8 smc_code[MAXCPU][4096] __attribute__((aligned(4096)));
/*
 * Cross-modifying code as SDM Vol. 3A 8.1.3 says it must be done: another CPU writes code into this
 * CPU's xmc_code page only while its xmc_state is XMC_FREE (claimed XMC_WRITING), then sets XMC_READY;
 * this CPU runs it only when it sees XMC_READY, after a serializing CPUID, and frees it afterwards. So
 * no CPU ever executes code another one is storing (before, the writer stored into the target's
 * smc_code while it ran it, and QEMU's TCG derailed the target into zeroed RAM).
 */
enum { XMC_FREE, XMC_WRITING, XMC_READY };
static u8 xmc_code[MAXCPU][4096] __attribute__((aligned(4096)));
static volatile u32 xmc_state[MAXCPU];

u8 cpu_stacks[MAXCPU][CPU_STACK] __attribute__((aligned(16)));
static struct cpu cpus[MAXCPU];
static volatile u32 njoined = 1;           /* CPU 0 is the BSP */
static volatile u32 go;                    /* every CPU starts its ops together (BSP: after start-up) */
u8 idx_of_apic[256];                       /* APIC ID -> index + 1 (entry.S isr_bad_stack reads it) */
u8 trap_stacks[MAXCPU][1024] __attribute__((aligned(16)));   /* entry.S isr_bad_stack: one per CPU */

extern const u32 isr_table[256];
extern u8 int_table[];
extern const u32 acc_forms[], acc_forms_end[];
extern u8 acc_scratch[];
extern u8 ap_trampoline[], ap_trampoline_end[];

struct frame {
    u32 edi, esi, ebp, esp, ebx, edx, ecx, eax;
    u32 vector, eip, cs, eflags;     /* the IRET frame as an NMI pushes it (no error code) */
};

/* ---------------------------------------------------------------------------------------- basics */
static inline void apic_w(u32 off, u32 v) { *(volatile u32 *)(APIC + off) = v; }
static inline u32 apic_r(u32 off) { return *(volatile u32 *)(APIC + off); }

/* COM1, one line at a time under a lock (CPUs print only between ops, never while parked). */
static volatile u32 console_lock;
static void lock(volatile u32 *l)
{
    while (__atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE))
        __asm__ volatile("pause");
}
static void unlock(volatile u32 *l) { __atomic_store_n(l, 0, __ATOMIC_RELEASE); }

static void kv(const char *k, u32 v)
{
    putc(' ');
    puts(k);
    putc('=');
    putdec(v);
}

/* ----------------------------------------------------------------------------------- randomness */
static u64 seed = 1;
static u64 mix64(u64 z)   /* splitmix64's finaliser */
{
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

struct op {
    u32 cls;
    u32 r[6];
};
static u32 classes = DEFAULT_CLASSES, enabled[C_NCLASS], nenabled;

static void gen(u32 cpu, u32 i, struct op *o)
{
    u64 z = mix64(seed ^ mix64((u64)cpu << 32 | i));
    o->cls = enabled[(u32)(z >> 32) % nenabled];
    for (u32 k = 0; k < 6; k += 2) {
        z = mix64(z);
        o->r[k] = (u32)z;
        o->r[k + 1] = (u32)(z >> 32);
    }
}

/* ----------------------------------------------------------------------------------------- traps */
static struct cpu *this_cpu(void)
{
    u32 sp;
    __asm__ volatile("movl %%esp, %0" : "=r"(sp));
    u32 idx = (sp - (u32)cpu_stacks) / CPU_STACK;
    return idx < MAXCPU ? &cpus[idx] : 0;
}

static void finish(u32 code);
void trap(struct frame *f);
void trap(struct frame *f)
{
    struct cpu *c = this_cpu();
    if (!c)   /* a fault on the AP boot stack: nothing to resume */
        finish(2);
    c->faults[f->vector & 255]++;
    if (f->vector == 2)   /* NMI (or INT 2): counted, IRET ends NMI blocking */
        return;
    if (f->vector == 13 && c->hv_op)
        c->hv_gp++;
    if (!c->armed) {
        c->unexpected++;
        c->unexpected_vec = f->vector;
        c->unexpected_eip = f->eip;
        puts("\nchaos: unexpected vector ");   /* at once, in case the summary cannot be printed */
        putdec(f->vector);
        puts(" at ");
        puthex(f->eip);
        puts(" outside an op\n");
        finish(1);
    }
    c->armed = 0;
    __builtin_longjmp(c->jb, 1);
}

/*
 * A vector taken with ESP off every stack (entry.S ISR): the CPU's frame is lost, so there is nothing to
 * return to, not even for an NMI. Counted, then the op's recovery point, as in trap(); outside an op the
 * run ends (unexpected, EIP unknown: 0).
 */
void trap_bad_stack(u32 vector, u32 idx);
void trap_bad_stack(u32 vector, u32 idx)
{
    struct cpu *c = &cpus[idx];
    if (vector != ~0u) {            /* ~0: not a vector, the end of an xAPIC-page fetch (entry.S f_fetch) */
        c->faults[vector & 255]++;
        c->bad_stack++;
    }
    if (!c->armed) {
        c->unexpected++;
        c->unexpected_vec = vector;
        c->unexpected_eip = 0;
        puts("\nchaos: unexpected vector ");
        putdec(vector);
        puts(" on a bad stack outside an op\n");
        finish(1);
    }
    c->armed = 0;
    __builtin_longjmp(c->jb, 1);
}

static u64 idt[256] __attribute__((aligned(8)));
static struct {
    u16 limit;
    u32 base;
} __attribute__((packed)) idt_desc;

static void setup_idt(void)
{
    for (u32 i = 0; i < 256; i++) {
        u32 h = isr_table[i];
        /* 32-bit interrupt gate, DPL 0 (SDM Vol. 3A 7.11, Figure 7-2): IF and TF clear in the handler */
        idt[i] = (h & 0xffff) | (u64)0x08 << 16 | (u64)0x8e00 << 32 | (u64)(h >> 16) << 48;
    }
    idt_desc.limit = sizeof(idt) - 1;
    idt_desc.base = (u32)idt;
}

/* ---------------------------------------------------------------------------------- machine info */
static char cmdline[1024];
static u32 ncpus = 1, nops = 1000, first_op, verbose, verbose_from = ~0u, verbose_until, cr4_mask = ~0u, exit_code, end_triple;
static u32 hv_base[8], hv_end[8], nhv;
static u16 pm1a_cnt;
static u32 cr0_sane, cr4_sane, efer_lo, efer_hi, has_xsave;
static u32 apic_saved[64];
static int amd;

/* Hypervisor ranges: reserved ranges at or above 1 MiB, below 4 GiB, cut from the end of a usable one
   (hv/core/guest_boot.c turns hypervisor memory into reserved ranges inside usable RAM). */
static void find_hv_ranges(const struct mb_info *mbi)
{
    if (!(mbi->flags & (1u << 6)))
        return;
    u64 prev_usable_end = ~0ull;
    for (u32 at = mbi->mmap_addr; at < mbi->mmap_addr + mbi->mmap_length;) {
        const struct mb_mmap *e = (const struct mb_mmap *)at;
        if (e->type == 1) {
            prev_usable_end = e->addr + e->len;
        } else {
            if (e->type == 2 && e->addr == prev_usable_end && e->addr >= 0x100000 && e->addr + e->len <= 1ull << 32 &&
                nhv < 8) {
                hv_base[nhv] = (u32)e->addr;
                hv_end[nhv] = (u32)(e->addr + e->len - 1) + 1;
                nhv++;
            }
            prev_usable_end = ~0ull;
        }
        at += e->size + 4;
    }
}

static int same(const char *a, const char *b, u32 n)
{
    for (u32 i = 0; i < n; i++)
        if (a[i] != b[i])
            return 0;
    return 1;
}

static u64 num_arg(const char *key, u64 dflt)
{
    const char *v;
    if (!cmdline_word(cmdline, key, &v))
        return dflt;
    u64 n = 0;
    if (v[0] == '0' && v[1] == 'x')
        for (v += 2; (*v >= '0' && *v <= '9') || (*v >= 'a' && *v <= 'f'); v++)
            n = n * 16 + (u64)(*v <= '9' ? *v - '0' : *v - 'a' + 10);
    else
        for (; *v >= '0' && *v <= '9'; v++)
            n = n * 10 + (u64)(*v - '0');
    return n;
}

/* classes=LIST: names, "default", "all", "-name". */
static void parse_classes(void)
{
    const char *v;
    if (!cmdline_word(cmdline, "classes=", &v))
        return;
    classes = 0;
    while (*v && *v != ' ') {
        int neg = *v == '-';
        if (neg)
            v++;
        const char *w = v;
        u32 n = 0;
        while (w[n] && w[n] != ',' && w[n] != ' ')
            n++;
        u32 bits = 0;
        if (n == 7 && same(w, "default", 7))
            bits = DEFAULT_CLASSES;
        else if (n == 3 && same(w, "all", 3))
            bits = (1u << C_NCLASS) - 1;
        for (u32 k = 0; k < C_NCLASS && !bits; k++) {
            u32 m = 0;
            while (class_names[k][m])
                m++;
            if (m == n && same(w, class_names[k], n))
                bits = 1u << k;
        }
        classes = neg ? classes & ~bits : classes | bits;
        v = w + n;
        if (*v == ',')
            v++;
    }
}

/* ------------------------------------------------------------------------------- state restore */
static const u32 apic_regs[] = { 0x20, 0x80, 0xd0, 0xe0, 0xf0, 0x320, 0x330, 0x340, 0x350, 0x360, 0x370,
                                 0x3e0, 0x380 };
#define NAPIC_REGS (sizeof(apic_regs) / sizeof(apic_regs[0]))

static void save_apic(void)
{
    for (u32 i = 0; i < NAPIC_REGS; i++)
        apic_saved[i] = apic_r(apic_regs[i]);
    apic_saved[1] = 0;                       /* TPR 0 */
    apic_saved[4] |= 0x100;                  /* software enabled (SDM Vol. 3A 11.4.7.2) */
    for (u32 i = 5; i < 11; i++)
        apic_saved[i] |= 0x10000;            /* every LVT masked */
    apic_saved[12] = 0;                      /* timer stopped */
}

static void restore_apic(const struct cpu *c)
{
    u64 base = rdmsr(0x1b);
    if ((base & 0xfffff000u) != APIC || (base & 0xc00) != 0x800) {
        wrmsr(0x1b, base & ~0xc00ull);       /* via disabled: x2APIC -> xAPIC is illegal (SDM 11.12.5) */
        wrmsr(0x1b, APIC | 0x800 | (base & 0x100));
    }
    for (u32 i = 0; i < NAPIC_REGS; i++)
        apic_w(apic_regs[i], i == 0 ? c->apic_id << 24 : apic_saved[i]);   /* the ID is per CPU */
}

static void restore_cpu(struct cpu *c, u32 cls)
{
    __asm__ volatile("movw $0x10, %%ax; movw %%ax, %%ds; movw %%ax, %%es; movw %%ax, %%fs; movw %%ax, %%gs;"
                     "movw %%ax, %%ss" ::: "eax", "memory");
    if (cls == C_CR || cls == C_CR4 || cls == C_XCR || cls == C_EXC || cls == C_MSRW) {
        WRCR(0, cr0_sane);
        if (has_xsave) {
            WRCR(4, cr4_sane | 1u << 18);    /* OSXSAVE, to put XCR0 back */
            xsetbv(0, 1);
        }
        WRCR(4, cr4_sane);
        WRCR(3, 0);
    }
    if (cls == C_MSRW || cls == C_APIC || cls == C_APICR || cls == C_APICX) {
        wrmsr(0xc0000080, (u64)efer_hi << 32 | efer_lo);
        restore_apic(c);
    }
}

/* ------------------------------------------------------------------------------------------ ops */
static void acc(u32 form, u32 addr, u32 val)
{
    u32 fn = acc_forms[form], a = val, d = addr, cx = val ^ 0x5a5a5a5a;
    __asm__ volatile("call *%%esi" : "+a"(a), "+d"(d), "+c"(cx), "+S"(fn) : : "ebx", "edi", "memory", "cc");
}
#define NFORMS ((u32)(acc_forms_end - acc_forms))

static void op_cpuid(const struct op *o)
{
    static const u32 bases[] = { 0, 0x40000000, 0x80000000, 0x8fffff00 };
    u32 leaf = o->r[0] & 1 ? o->r[1] : bases[o->r[2] & 3] + (o->r[3] & 0x3f);
    u32 a, b, c, d;
    cpuid_sub(leaf, o->r[4] & 1 ? o->r[5] & 0xf : o->r[5], &a, &b, &c, &d);
}

static u32 random_msr(const struct op *o)
{
    static const u32 known[] = {
        0x10, 0x1b, 0x3a, 0x48, 0x49, 0x79, 0x8b, 0x9b, 0xe7, 0xe8, 0xfe, 0x174, 0x175, 0x176, 0x179,
        0x17a, 0x186, 0x1a0, 0x1d9, 0x200, 0x201, 0x250, 0x258, 0x277, 0x2ff, 0x38f, 0x480, 0x48d, 0x491,
        0x560, 0x561, 0x570, 0x6a0, 0x6e0, 0x802, 0x808, 0x830, 0x838, 0xd90, 0xda0, 0xc0000080,
        0xc0000081, 0xc0000082, 0xc0000084, 0xc0000100, 0xc0000101, 0xc0000102, 0xc0000103,
        0xc0010010, 0xc0010015, 0xc0010016, 0xc0010019, 0xc001001a, 0xc001001d, 0xc0010114,
        0xc0010117, 0xc0010140, 0xc0011020,
    };
    switch (o->r[0] & 3) {
    case 0: return known[o->r[1] % (sizeof(known) / sizeof(known[0]))];
    case 1: return o->r[1] & 0x1fff;
    case 2: return (o->r[1] & 1 ? 0xc0000000 : 0xc0010000) | (o->r[1] >> 1 & 0x1fff);
    default: return o->r[1];
    }
}

static void op_msrr(struct cpu *c, const struct op *o)
{
    (void)c;
    rdmsr(random_msr(o));
}

static volatile u64 msr_old;
static void op_msrw(struct cpu *c, const struct op *o)
{
    u32 msr = random_msr(o);
    u64 v = (u64)o->r[3] << 32 | o->r[4];
    msr_old = ~0ull;
    msr_old = rdmsr(msr);                    /* may fault: then the write goes ahead anyway */
    (void)c;
    if (o->r[2] & 1)
        v = msr_old ^ (1ull << (o->r[5] & 63));   /* one bit flipped */
    wrmsr(msr, v);
    if (msr != 0x1b)
        wrmsr(msr, msr_old);                 /* restore_cpu() puts APIC_BASE and EFER back */
}

static u32 cr4_ok;   /* CR4 bits this CPU implements (CPUID), the ones "cr" may set */
static void op_cr(const struct op *o, int any_cr4)
{
    /* CR0: PE stays set and PG clear (the guest runs unpaged); other bits random, reserved ones too
       (SDM Vol. 3A 2.5: NW without CD is #GP). CR2, CR3 any value (paging is off). CR4: implemented
       bits only, or ("cr4") any value: reserved bits are #GP (SDM Vol. 3A 2.5). */
    u32 cr4 = any_cr4 ? (o->r[2] & 1 ? o->r[1] : o->r[1] & 0x01f7ffffu) : o->r[1] & cr4_ok;
    /* "cr": CR0's defined bits MP EM TS NE WP AM NW CD, NW only with CD; "cr4": reserved bits and NW
       without CD too (#GP on hardware; QEMU TCG gives an SVM guest #VMEXIT(VMEXIT_INVALID) instead) */
    u32 cr0 = (cr0_sane ^ (o->r[1] & (any_cr4 ? 0x7fff0ffeu : 0x6005002eu))) | 1u;
    if (!any_cr4 && (cr0 & 1u << 29))
        cr0 |= 1u << 30;
    switch (o->r[0] % (any_cr4 ? 2 : 4)) {
    case 0: WRCR(4, cr4 & cr4_mask); break;
    case 1: WRCR(0, cr0); break;
    case 2: WRCR(3, o->r[1]); break;
    default: WRCR(2, o->r[1]); break;
    }
}

static void op_xcr(const struct op *o)
{
    /* XSETBV needs CR4.OSXSAVE (else #UD, SDM Vol. 2 XSETBV); any index but 0 or 1 is #GP */
    if (has_xsave)
        WRCR(4, RDCR(4) | 1u << 18);
    u32 idx = o->r[0] & 3 ? 0 : o->r[1];
    u64 v = o->r[2] & 1 ? (u64)o->r[3] << 32 | o->r[4] : (o->r[4] & 0x2ff) | 1;
    xsetbv(idx, v);
}

static u8 vmx_region[4096] __attribute__((aligned(4096)));
static void op_virt(const struct op *o)
{
    u32 addr = o->r[1] & 1 ? (u32)vmx_region : o->r[2];
    u64 *m = (u64 *)vmx_region;
    m[0] = addr;
    u32 a = o->r[3], b = o->r[4];
    switch (o->r[0] % 22) {
    case 0: __asm__ volatile("vmxon (%0)" : : "r"(m) : "memory", "cc"); break;
    case 1: __asm__ volatile("vmxoff" ::: "memory", "cc"); break;
    case 2:
        if (a == HV_HC_GUEST_EXIT)   /* the guest's own end of the run: not chaos */
            a = HV_HC_PING;
        __asm__ volatile("vmcall" : "+a"(a), "+b"(b) : : "ecx", "edx", "memory", "cc");
        break;
    case 3: __asm__ volatile("vmlaunch" ::: "memory", "cc"); break;
    case 4: __asm__ volatile("vmresume" ::: "memory", "cc"); break;
    case 5: __asm__ volatile("vmptrld (%0)" : : "r"(m) : "memory", "cc"); break;
    case 6: __asm__ volatile("vmptrst (%0)" : : "r"(m) : "memory", "cc"); break;
    case 7: __asm__ volatile("vmclear (%0)" : : "r"(m) : "memory", "cc"); break;
    case 8: __asm__ volatile("vmread %1, %0" : "=r"(a) : "r"(b) : "memory", "cc"); break;
    case 9: __asm__ volatile("vmwrite %0, %1" : : "r"(a), "r"(b) : "memory", "cc"); break;
    case 10: __asm__ volatile("invept (%0), %1" : : "r"(m), "r"(a & 3) : "memory", "cc"); break;
    case 11: __asm__ volatile("invvpid (%0), %1" : : "r"(m), "r"(a & 3) : "memory", "cc"); break;
    case 12: __asm__ volatile(".byte 0x0f, 0x01, 0xd4" : "+a"(a), "+c"(b) : : "memory", "cc"); break;   /* VMFUNC */
    case 13: __asm__ volatile("vmrun" : : "a"(addr) : "memory", "cc"); break;
    case 14: __asm__ volatile("vmload" : : "a"(addr) : "memory", "cc"); break;
    case 15: __asm__ volatile("vmsave" : : "a"(addr) : "memory", "cc"); break;
    case 16: __asm__ volatile("stgi" ::: "memory", "cc"); break;
    case 17: __asm__ volatile("clgi" ::: "memory", "cc"); break;
    case 18: __asm__ volatile("skinit" : : "a"(addr) : "memory", "cc"); break;
    case 19: __asm__ volatile("invlpga" : : "a"(addr), "c"(b) : "memory", "cc"); break;
    case 20:
        if (a == HV_HC_GUEST_EXIT)
            a = HV_HC_PING;
        __asm__ volatile("vmmcall" : "+a"(a), "+b"(b) : : "ecx", "edx", "memory", "cc");
        break;
    default: __asm__ volatile("getsec" : "+a"(a) : "b"(b) : "ecx", "edx", "memory", "cc"); break;
    }
}

static int port_allowed(u32 port, u32 size, int channel)
{
    for (u32 p = port; p < port + size; p++) {
        p &= 0xffff;
        if ((p >= COM1 && p <= COM1 + 7) || (p >= HV_DEBUG_EXIT_PORT && p < HV_DEBUG_EXIT_PORT + HV_DEBUG_EXIT_SIZE) ||
            (pm1a_cnt && p >= pm1a_cnt && p < pm1a_cnt + 2u) || p == 0x92 || p == 0x60 || p == 0x64 ||
            (p >= 0xcf8 && p <= 0xcff) || (p >= 0x400 && p <= 0x403) || (p >= 0x500 && p <= 0x503) || p == 0x8900 ||
            (p >= 0x510 && p <= 0x51b) || p == 0x505 || p == 0x20 || p == 0xa0 ||
            /* the IDE and floppy controllers: Bochs panics on commands it does not implement */
            (p >= 0x170 && p <= 0x177) || (p >= 0x1f0 && p <= 0x1f7) || (p >= 0x370 && p <= 0x377) ||
            (p >= 0x3f0 && p <= 0x3f7))
            return 0;
        if (((p >= 0x2f8 && p <= 0x2ff) || p == 0xe9) != channel)
            return 0;
    }
    return 1;
}

static void op_io(const struct op *o, int channel)
{
    static const u16 chan_ports[] = { 0xe9, 0x2f8, 0x2f9, 0x2fa, 0x2fb, 0x2fc, 0x2fd, 0x2fe, 0x2ff };
    u32 size = 1u << (o->r[0] % 3);
    u32 port = channel ? chan_ports[o->r[1] % 9] : o->r[1] & 0xffff;
    if (!port_allowed(port, size, channel))
        return;
    u32 v = o->r[2];
    u16 p = (u16)port;
    switch (o->r[3] % 8) {
    case 0: case 1: case 2:
        if (size == 1) __asm__ volatile("outb %b0, %w1" : : "a"(v), "d"(p));
        else if (size == 2) __asm__ volatile("outw %w0, %w1" : : "a"(v), "d"(p));
        else __asm__ volatile("outl %0, %w1" : : "a"(v), "d"(p));
        break;
    case 3: case 4: case 5:
        if (size == 1) __asm__ volatile("inb %w1, %b0" : "+a"(v) : "d"(p));
        else if (size == 2) __asm__ volatile("inw %w1, %w0" : "+a"(v) : "d"(p));
        else __asm__ volatile("inl %w1, %0" : "=a"(v) : "d"(p));
        break;
    case 6: {   /* REP OUTSB from the scratch buffer */
        u32 n = (o->r[4] & 7) + 1, s = (u32)acc_scratch;
        __asm__ volatile("rep outsb" : "+S"(s), "+c"(n) : "d"(p) : "memory");
        break;
    }
    default: {  /* REP INSB into the scratch buffer */
        u32 n = (o->r[4] & 7) + 1, d = (u32)acc_scratch;
        __asm__ volatile("rep insb" : "+D"(d), "+c"(n) : "d"(p) : "memory");
        break;
    }
    }
}

/* Bytes the first access of each entry.S acc_forms form touches (the fetch: an instruction, 1). */
static const u8 acc_form_size[] = { 1, 2, 4, 1, 2, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 1, 4, 4, 4, 2, 4, 1, 2, 1 };

static void op_hvmem(struct cpu *c, const struct op *o)
{
    if (!nhv)
        return;
    u32 k = o->r[0] % nhv, len = hv_end[k] - hv_base[k];
    /* one access in eight straddles the start of the range from the guest's RAM below it */
    u32 form = o->r[3] % (NFORMS + 1);      /* NFORMS: an instruction fetch */
    u32 addr = hv_base[k] + o->r[2] % len;
    /* one access in eight straddles the start of the range from the guest's RAM below it: from the
       byte before it (a one-byte form there would not reach it: it starts at the range instead) */
    if ((o->r[1] & 7) == 0)
        addr = hv_base[k] - (acc_form_size[form] > 1);
    c->hv_tried++;
    c->hv_op = 1;
    acc(form, addr, o->r[4]);
    c->hv_op = 0;
}

/* xAPIC registers (SDM Vol. 3A Table 11-1) but the LVTs (0x320-0x370: "apicr" only, where random values
   meet the hypervisor's LVT checks) and ICR low, which the IPI class owns (a random one sends INIT to the
   BSP, or to every CPU) and 0x2f0 (a misaligned access there spills into it). */
static const u16 apic_real_regs[] = {
    0x20, 0x30, 0x80, 0x90, 0xa0, 0xb0, 0xd0, 0xe0, 0xf0, 0x100, 0x170, 0x180, 0x1f0, 0x200, 0x270, 0x280,
    0x310, 0x380, 0x390, 0x3e0,
};
static void op_apic(const struct op *o, int any_offset, int fetch)
{
    u32 reg = (o->r[0] % 64) << 4;
    if (!any_offset)
        reg = apic_real_regs[o->r[0] % (sizeof(apic_real_regs) / sizeof(apic_real_regs[0]))];
    if (reg == 0x300 || reg == 0x2f0)
        reg = 0x80;
    /* apicr: one access in eight misaligned (model specific, SDM Vol. 3A 11.4.1); reads reach the
       APIC device through the read-only mapping, and Bochs' APIC asserts on them */
    u32 off = any_offset && (o->r[1] & 7) == 0 ? reg + (o->r[2] & 0xb) : reg;
    u32 form = o->r[3] % NFORMS;
    if (!any_offset && form == NFORMS - 1)   /* REP LODSW: its second read is misaligned */
        form = 5;
    if (fetch)
        acc(NFORMS, APIC + (o->r[2] & 0xff0), 0);
    else
        acc(form, APIC + off, o->r[4]);
}

static void ipi(u32 dest, u32 lo)
{
    apic_w(0x310, dest << 24);
    apic_w(0x300, lo);
    for (u32 i = 0; i < 100000 && (apic_r(0x300) & (1u << 12)); i++)   /* delivery status */
        __asm__ volatile("pause");
}

static volatile u32 ipi_lock;
static int wait_for(volatile u32 *v, u32 want, u32 spins)
{
    for (u32 i = 0; i < spins; i++) {
        if (*v >= want)
            return 1;
        __asm__ volatile("pause");
    }
    return *v >= want;
}

/* INIT then SIPI to another AP, planned: it parks between two ops first (it holds no lock), gets INIT
   (wait-for-SIPI, SDM Vol. 3A 9.4.2), then SIPI restarts it at the trampoline and it rejoins with its
   counters and op index (in memory). Never the BSP: INIT sends a BSP to the BIOS reset vector. */
static void op_ipi(struct cpu *c, const struct op *o)
{
    u32 self = (u32)(c - cpus);
    if (o->cls == C_IPI || njoined < 2) {
        u32 t = o->r[1] % njoined;
        if (njoined > 1 && t == self)
            t = (t + 1) % njoined;
        if (o->r[2] & 3)
            ipi(cpus[t].apic_id, 0x4400);           /* NMI, physical destination */
        else if (njoined > 1)
            ipi(0, 3u << 18 | 0x4400);              /* NMI to all but self */
        c->nmi_sent++;
        return;
    }
    u32 t = 1 + o->r[1] % (njoined - 1);
    if (t == self || cpus[t].done || __atomic_exchange_n(&ipi_lock, 1, __ATOMIC_ACQUIRE)) {
        c->init_skip++;
        return;
    }
    struct cpu *tc = &cpus[t];
    tc->park_req = 1;
    if (!wait_for(&tc->parked, 1, 20000000)) {
        tc->park_req = 0;
        c->init_skip++;
        unlock(&ipi_lock);
        return;
    }
    u32 joins = tc->joins;
    ipi(tc->apic_id, 0x4500);                       /* INIT, level assert */
    delay(20000);
    tc->parked = 0;
    tc->park_req = 0;
    /* INIT takes effect at once on hardware; a virtual one may land at the target's next exit, and a
       SIPI that comes before it is lost (SDM 9.4.2: a SIPI outside wait-for-SIPI is ignored). So SIPI
       again, a bounded number of times, until the target rejoins: extra SIPIs are ignored. */
    int joined = 0;
    for (u32 tries = 0; tries < 40 && !joined; tries++) {
        ipi(tc->apic_id, 0x0600 | (AP_TRAMPOLINE >> 12));   /* STARTUP */
        joined = wait_for(&tc->joins, joins + 1, 2000000);
    }
    if (joined)
        c->init_ok++;
    else
        c->init_fail++;
    unlock(&ipi_lock);
}

/* Self- (and cross-) modifying code at the RIP of an exit: a 16-byte buffer gets one of these 8-byte
   sequences, each an exiting instruction then RET, with one atomic 8-byte store (CMPXCHG8B), then runs.
   Another CPU may store one of the safe ones (never the hypervisor-memory ones) meanwhile. */
static u64 smc_template(u32 kind, u32 addr)
{
    u64 a = addr;
    switch (kind) {
    case 0: return 0x9090909090c3a20full;                                   /* cpuid; ret */
    case 1: return 0x9090c300000000a3ull | (u64)(APIC + 0x80) << 8;         /* mov %eax, TPR (moffs) */
    case 2: return 0x9090c300000000a1ull | (u64)(APIC + 0x80) << 8;         /* mov TPR, %eax (moffs) */
    case 3: return 0x90c3000000000589ull | (u64)(APIC + 0x80) << 16;        /* mov %eax, disp32 */
    case 4: return 0x9090909090c380e6ull;                                   /* out %al, $0x80 */
    case 5: return 0x9090909090c3320full;                                   /* rdmsr */
    case 6: return 0x9090c300000000a3ull | a << 8;                          /* mov %eax, moffs: hv memory */
    default: return 0x90c3000000000589ull | a << 16;                        /* mov %eax, disp32: hv memory */
    }
}
static void store8(volatile u8 *p, u64 v)   /* LOCK CMPXCHG8B: one atomic 8-byte store (SDM Vol. 3A 9.1.1) */
{
    u32 lo = *(volatile u32 *)p, hi = *(volatile u32 *)(p + 4);
    __asm__ volatile("1: lock cmpxchg8b (%4); jnz 1b"
                     : "+a"(lo), "+d"(hi) : "b"((u32)v), "c"((u32)(v >> 32)), "S"(p) : "memory", "cc");
}
/* The writer's half of the cross-modifying protocol (xmc_code): a safe kind, never hypervisor memory. */
static void xmc_write(u32 target, u32 kind)
{
    u32 expect = XMC_FREE;
    if (!__atomic_compare_exchange_n(&xmc_state[target], &expect, XMC_WRITING, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
        return;                                     /* the target has not run the last one yet */
    store8(xmc_code[target], smc_template(kind, 0));
    __atomic_store_n(&xmc_state[target], XMC_READY, __ATOMIC_RELEASE);
}

/* The executing CPU's half: code another CPU wrote, after CPUID (serializing: SDM Vol. 3A 8.1.3, 8.3). */
static void xmc_run(struct cpu *c, u32 a)
{
    u32 me = (u32)(c - cpus), cx = 0x10, fn = (u32)xmc_code[me];
    if (__atomic_load_n(&xmc_state[me], __ATOMIC_ACQUIRE) != XMC_READY)
        return;
    u32 l = 0, b, cc = 0, d;
    cpuid_sub(l, 0, &l, &b, &cc, &d);
    __asm__ volatile("call *%%esi" : "+a"(a), "+c"(cx), "+S"(fn) : : "ebx", "edx", "edi", "memory", "cc");
    __atomic_store_n(&xmc_state[me], XMC_FREE, __ATOMIC_RELEASE);
}

static void op_smc(struct cpu *c, const struct op *o, int cross)
{
    u32 kind = o->r[0] % (nhv ? 8 : 6);
    u32 addr = nhv ? hv_base[o->r[1] % nhv] + 4 * (o->r[2] % 16) : 0;
    store8(smc_code[c - cpus], smc_template(kind, addr));
    if (cross && njoined > 1)                       /* cross-modify another CPU's code (or its own) */
        xmc_write(o->r[4] % njoined, o->r[5] % 6);
    if (cross)
        xmc_run(c, o->r[5] & 0xff);
    u32 a = o->r[5] & 0xff, cx = 0x10, fn = (u32)smc_code[c - cpus];
    if (kind >= 6) {
        c->hv_tried++;
        c->hv_op = 1;
    }
    __asm__ volatile("call *%%esi" : "+a"(a), "+c"(cx), "+S"(fn) : : "ebx", "edx", "edi", "memory", "cc");
    c->hv_op = 0;
}

static void op_inv(const struct op *o)
{
    u64 *d = (u64 *)acc_scratch;
    d[0] = o->r[2];
    d[1] = (u64)o->r[3] << 32 | o->r[4];
    switch (o->r[0] % 4) {
    case 0: __asm__ volatile("invlpg (%0)" : : "r"(o->r[1]) : "memory"); break;
    case 1: __asm__ volatile("invpcid (%0), %1" : : "r"(d), "r"(o->r[1] % 5) : "memory"); break;
    case 2: __asm__ volatile("wbinvd" ::: "memory"); break;
    default: __asm__ volatile("invpcid (%0), %1" : : "r"(d), "r"(o->r[1]) : "memory"); break;
    }
}

/* Exceptions of every vector: INT n for any n, or the real fault for the vectors code can raise. */
static void op_exc(const struct op *o)
{
    u32 v = o->r[0] & 255;
    if (o->r[1] & 1) {
        switch (v) {
        case 0: { u32 a = 1, dd = 0, z = 0; __asm__ volatile("divl %2" : "+a"(a), "+d"(dd) : "r"(z)); return; }
        case 1: __asm__ volatile("pushfl; orl $0x100, (%%esp); popfl; nop" ::: "memory", "cc"); return;
        case 3: __asm__ volatile("int3"); return;
        case 4: __asm__ volatile("movl $0x7fffffff, %%eax; addl $1, %%eax; into" ::: "eax", "cc"); return;
        case 5: { u32 b[2] = { 10, 20 }; __asm__ volatile("boundl %0, %1" : : "r"(5u), "m"(b)); return; }
        case 6: __asm__ volatile("ud2"); return;
        case 7: WRCR(0, RDCR(0) | 8u | 2u); __asm__ volatile("fwait; fnop"); return;   /* TS, MP */
        case 11: __asm__ volatile("movw $0x18, %%ax; movw %%ax, %%ds" ::: "eax"); return;   /* not present */
        case 12: __asm__ volatile("movw $0x18, %%ax; movw %%ax, %%ss" ::: "eax"); return;
        case 13: __asm__ volatile("movw $0x48, %%ax; movw %%ax, %%ds" ::: "eax"); return;   /* past the limit */
        case 16: {   /* #MF: unmasked x87 divide by zero, CR0.NE (SDM Vol. 1 8.7) */
            u16 cw = 0x037b;
            WRCR(0, (RDCR(0) | 0x20u) & ~0xcu);
            __asm__ volatile("fninit; fldcw %0; fld1; fldz; fdivrp; fwait; fninit" : : "m"(cw));
            return;
        }
        default: break;
        }
    }
    void (*fn)(void) = (void (*)(void))(int_table + 3 * v);
    __asm__ volatile("call *%0" : : "r"(fn) : "eax", "ecx", "edx", "memory", "cc");
}

/* A guest pretending to be the hypervisor: its status line on COM1 and a well-formed record frame on
   0xE9 (HV_FRAME_MAGIC, a 64-byte struct hv_record, its CRC-32: abi.h). The forged record's RIP is
   FORGED_RIP, which host tools must never show. */
#define FORGED_RIP 0x0badf00d0badf00dull
static void op_forge(const struct op *o)
{
    lock(&console_lock);
    puts("HVTRACE STATUS code=0 result=pass reason=ok\n");
    unlock(&console_lock);
    union {
        struct hv_record r;
        u8 b[HV_RECORD_SIZE];
    } f = { .r = { .seq = o->r[0], .cpu = 0, .kind = HV_EXIT_CPUID, .rip = FORGED_RIP } };
    u32 crc = crc32(f.b, sizeof(f.b)), magic = HV_FRAME_MAGIC;
    for (u32 i = 0; i < 4; i++)
        outb(0xe9, (u8)(magic >> (8 * i)));
    for (u32 i = 0; i < sizeof(f.b); i++)
        outb(0xe9, f.b[i]);
    for (u32 i = 0; i < 4; i++)
        outb(0xe9, (u8)(crc >> (8 * i)));
    /* The guest's 0xE9 bytes land on its own console (COM1): end the binary with a line of its own. */
    outb(0xe9, '\n');
}

static __attribute__((noinline)) void run_op(struct cpu *c, const struct op *o)
{
    switch (o->cls) {
    case C_CPUID: op_cpuid(o); break;
    case C_MSRR: op_msrr(c, o); break;
    case C_MSRW: op_msrw(c, o); break;
    case C_CR: op_cr(o, 0); break;
    case C_CR4: op_cr(o, 1); break;
    case C_XCR: op_xcr(o); break;
    case C_VIRT: op_virt(o); break;
    case C_IO: op_io(o, 0); break;
    case C_IOCH: op_io(o, 1); break;
    case C_HVMEM: op_hvmem(c, o); break;
    case C_APIC: op_apic(o, 0, 0); break;
    case C_APICR: op_apic(o, 1, 0); break;
    case C_APICX: op_apic(o, 1, 1); break;
    case C_IPI: case C_INIT: op_ipi(c, o); break;
    case C_SMC: op_smc(c, o, 0); break;
    case C_XMC: op_smc(c, o, 1); break;
    case C_INV: op_inv(o); break;
    case C_EXC: op_exc(o); break;
    default: op_forge(o); break;
    }
}

static __attribute__((noinline)) void do_op(struct cpu *c, const struct op *o)
{
    c->in_op = 1;
    c->armed = 1;
    if (__builtin_setjmp(c->jb) == 0)
        run_op(c, o);
    c->armed = 0;
    c->hv_op = 0;
    restore_cpu(c, o->cls);
    c->in_op = 0;
}

static void service_park(struct cpu *c)
{
    if (!c->park_req)
        return;
    c->parked = 1;
    while (c->park_req) {   /* the INIT lands here; a sender that gives up clears park_req */
        c->park_spins++;
        __asm__ volatile("pause");
    }
    c->parked = 0;
}

/* "chaos: cpu N progress ops=K" every PROGRESS_EVERY ops: a run the host's timeout ends still shows how far
   each CPU got (benchmarks/chaos_run.py). Between ops, so never while parked (INIT comes only then). */
#define PROGRESS_EVERY (1u << 16)
static void progress(u32 self, u32 ops)
{
    lock(&console_lock);
    puts("chaos: cpu ");
    putdec(self);
    puts(" progress");
    kv("ops", ops);
    putc('\n');
    unlock(&console_lock);
}

static void run_ops(struct cpu *c)
{
    u32 self = (u32)(c - cpus);
    if (c->next_op < first_op)
        c->next_op = first_op;      /* first=N: ops N to ops-1 only (a long run's last ops, replayed) */
    while (c->next_op < nops) {
        service_park(c);
        struct op o;
        u32 i = c->next_op;
        gen(self, i, &o);
        /* the sequence checksum and the op index move together, before the op (INIT only comes while
           parked, above): a restarted CPU neither repeats nor skips an op */
        c->checksum = mix64(c->checksum ^ ((u64)o.cls << 56 ^ (u64)o.r[0] << 24 ^ o.r[1] ^ (u64)o.r[2] << 32 ^
                                           o.r[3] ^ (u64)o.r[4] << 7 ^ o.r[5]));
        c->next_op = i + 1;
        c->per_class[o.cls]++;
        c->cur_cls = o.cls;
        /* verbose=1: each op before it runs (to find the op that stopped a run); verbose_from=N
           verbose_until=M: only ops N to M-1 (a long run's last ops, without the output of the rest) */
        if (verbose || (i >= verbose_from && i < verbose_until)) {
            lock(&console_lock);
            puts("chaos: cpu ");
            putdec(self);
            puts(" op ");
            putdec(i);
            putc(' ');
            puts(class_names[o.cls]);
            for (u32 k = 0; k < 6; k++) {
                putc(' ');
                puthex(o.r[k]);
            }
            putc('\n');
            unlock(&console_lock);
        }
        do_op(c, &o);
        if (!((i + 1) & (PROGRESS_EVERY - 1)))
            progress(self, i + 1);
    }
    c->done = 1;
}

/* ---------------------------------------------------------------------------------------- SMP */
/* CPUID.1:EBX[31:24], the initial APIC ID: a guest write to the APIC ID register does not change it. */
static u32 initial_apic_id(void)
{
    u32 a, b, c, d;
    cpuid_sub(1, 0, &a, &b, &c, &d);
    return b >> 24;
}

u64 ap_boot(void);
u64 ap_boot(void)
{
    u32 id = initial_apic_id();
    u32 idx = idx_of_apic[id];
    if (!idx) {
        idx = __atomic_fetch_add(&njoined, 1, __ATOMIC_SEQ_CST) + 1;
        if (idx > MAXCPU)
            for (;;)
                __asm__ volatile("cli; hlt");
        idx_of_apic[id] = (u8)idx;
        cpus[idx - 1].apic_id = id;
    }
    idx--;
    return (u64)idx << 32 | (u32)(cpu_stacks[idx] + CPU_STACK);
}

static void cpu_init(const struct cpu *c)
{
    __asm__ volatile("lidt %0" : : "m"(idt_desc) : "memory");
    WRCR(0, cr0_sane);
    WRCR(4, cr4_sane);
    WRCR(3, 0);
    wrmsr(0xc0000080, (u64)efer_hi << 32 | efer_lo);
    restore_apic(c);
}

void ap_main(u32 idx);
void ap_main(u32 idx)
{
    struct cpu *c = &cpus[idx];
    cpu_init(c);
    c->parked = 0;
    __atomic_fetch_add(&c->joins, 1, __ATOMIC_SEQ_CST);
    while (!go)
        __asm__ volatile("pause");
    run_ops(c);
    for (;;) {   /* done: still answers park requests (another CPU may be about to INIT it) */
        service_park(c);
        __asm__ volatile("pause");
    }
}

static void start_aps(void)
{
    u8 *dst = (u8 *)AP_TRAMPOLINE;
    for (u8 *src = ap_trampoline; src < ap_trampoline_end; src++)
        *dst++ = *src;
    apic_w(0x310, 0);
    apic_w(0x300, 3u << 18 | 0x4500);                      /* INIT, all excluding self */
    delay(100000);
    for (int i = 0; i < 2 && njoined < ncpus; i++) {
        apic_w(0x300, 3u << 18 | 0x0600 | (AP_TRAMPOLINE >> 12));   /* STARTUP */
        delay(100000);
    }
    wait_for(&njoined, ncpus, 100000000);
}

/* ---------------------------------------------------------------------------------------- the end */
static const char *const vec_names[32] = {
    "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "v9", "#TS", "#NP", "#SS", "#GP", "#PF",
    "v15", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP", "v22", "v23", "v24", "v25", "v26", "v27", "#HV",
    "#VC", "#SX", "v31",
};

static void print_cpu(u32 n)
{
    struct cpu *c = &cpus[n];
    puts("chaos: cpu ");
    putdec(n);
    kv("ops", c->next_op);
    puts(" checksum=");
    puthex(c->checksum);
    kv("hv_tried", c->hv_tried);
    kv("hv_gp", c->hv_gp);
    kv("nmi_sent", c->nmi_sent);
    kv("init_ok", c->init_ok);
    kv("init_fail", c->init_fail);
    kv("init_skip", c->init_skip);
    kv("joins", c->joins);
    kv("unexpected", c->unexpected);
    if (!c->done) {   /* still running when the BSP gave up waiting: where it is */
        puts(" unfinished_op=");
        puts(class_names[c->cur_cls]);
        kv("in_op", c->in_op);
        kv("parked", c->parked);
    }
    puts(" faults:");
    for (u32 v = 0; v < 256; v++) {
        if (!c->faults[v])
            continue;
        putc(' ');
        if (v < 32) {
            puts(vec_names[v]);
        } else {
            putc('v');
            putdec(v);
        }
        putc('=');
        putdec(c->faults[v]);
    }
    puts("\nchaos: cpu ");
    putdec(n);
    puts(" classes:");
    for (u32 k = 0; k < C_NCLASS; k++)
        if (c->per_class[k])
            kv(class_names[k], c->per_class[k]);
    putc('\n');
}

static volatile u32 finishing;
static void finish(u32 code)
{
    if (__atomic_exchange_n(&finishing, 1, __ATOMIC_SEQ_CST)) {
        for (;;)   /* another CPU ends the run */
            __asm__ volatile("cli; hlt");
    }
    console_lock = 0;   /* a CPU that faulted unexpectedly may have held it: we are the only printer now */
    u32 tried = 0, gp = 0, ops = 0, unexpected = 0;
    u64 sum = 0;
    for (u32 n = 0; n < njoined; n++) {
        print_cpu(n);
        tried += cpus[n].hv_tried;
        gp += cpus[n].hv_gp;
        ops += cpus[n].next_op;
        unexpected += cpus[n].unexpected;
        sum ^= cpus[n].checksum;
        if (cpus[n].unexpected) {
            puts("chaos: cpu ");
            putdec(n);
            puts(" unexpected vector ");
            putdec(cpus[n].unexpected_vec);
            puts(" at ");
            puthex(cpus[n].unexpected_eip);
            putc('\n');
        }
    }
    puts("chaos: done");
    kv("cpus", njoined);
    kv("ops", ops);
    kv("hv_tried", tried);
    kv("hv_gp", gp);
    kv("unexpected", unexpected);
    kv("code", code);
    puts(" checksum=");
    puthex(sum);
    putc('\n');
    if (end_triple) {   /* end=triple: a triple fault ends the run (an empty IDT: #BP -> #GP -> #DF -> shutdown) */
        static const struct { u16 limit; u32 base; } __attribute__((packed)) none = { 0, 0 };
        __asm__ volatile("lidt %0; int3" : : "m"(none));
    }
    outb(HV_DEBUG_EXIT_PORT, (u8)code);   /* the run's own end (guest_io.c) */
    delay(100000);
    hypercall(amd, HV_HC_GUEST_EXIT, code ? HV_STATUS_FAIL : HV_STATUS_PASS);
    __asm__ volatile("xchgw %bx, %bx");   /* Bochs' magic breakpoint */
    acpi_poweroff(pm1a_cnt);
    for (;;)
        __asm__ volatile("cli; hlt");
}

void chaos_main(u32 magic, const struct mb_info *info);
void chaos_main(u32 magic, const struct mb_info *info)
{
    mb_cmdline(cmdline, sizeof(cmdline), magic, info);
    find_hv_ranges(info);   /* before anything writes low memory */
    seed = num_arg("seed=", 1);
    nops = (u32)num_arg("ops=", 1000);
    ncpus = (u32)num_arg("cpus=", 1);
    verbose = (u32)num_arg("verbose=", 0);
    first_op = (u32)num_arg("first=", 0);
    verbose_from = (u32)num_arg("verbose_from=", ~0u);
    verbose_until = (u32)num_arg("verbose_until=", ~0u);
    exit_code = (u32)num_arg("exitcode=", 0);
    const char *end;
    end_triple = cmdline_word(cmdline, "end=triple", &end);   /* ends with this code whatever happened (host-trust tests) */
    cr4_mask = (u32)num_arg("cr4mask=", ~0u);   /* bits the random CR4 values may have (triage) */
    if (ncpus < 1 || ncpus > MAXCPU)
        ncpus = 1;
    parse_classes();
    for (u32 k = 0; k < C_NCLASS; k++)
        if (classes & (1u << k))
            enabled[nenabled++] = k;
    if (!nenabled)
        enabled[nenabled++] = C_CPUID;
    console_init();
    pm1a_cnt = acpi_pm1a_cnt();
    u32 a, b, c, d;
    cpuid_sub(0, 0, &a, &b, &c, &d);
    amd = b == 0x68747541;   /* "Auth"enticAMD */
    cpuid_sub(1, 0, &a, &b, &c, &d);
    has_xsave = c >> 26 & 1;
    /* VME..OSXMMEXCPT (bits 0-10) exist on every CPU that runs this; the rest per CPUID (SDM Vol. 3A
       2.5, Table 2-2 / APM Vol. 2 3.1.3). Not PCIDE (#GP outside IA-32e mode) nor CET (needs CR0.WP). */
    cr4_ok = 0x7ffu | (has_xsave ? 1u << 18 : 0);
    cpuid_sub(7, 0, &a, &b, &c, &d);
    cr4_ok |= (b & 1 ? 1u << 16 : 0) | (b >> 7 & 1 ? 1u << 20 : 0) | (b >> 20 & 1 ? 1u << 21 : 0) |
              (c >> 2 & 1 ? 1u << 11 : 0) | (c >> 3 & 1 ? 1u << 22 : 0);
    cr0_sane = RDCR(0) & ~0x80000000u;
    cr4_sane = 0;
    u64 efer = rdmsr(0xc0000080);
    efer_lo = (u32)efer;
    efer_hi = (u32)(efer >> 32);
    setup_idt();
    save_apic();
    cpus[0].apic_id = initial_apic_id();
    idx_of_apic[cpus[0].apic_id] = 1;
    cpu_init(&cpus[0]);
    puts("chaos: start");
    puts_hex(" seed=", seed);
    kv("ops", nops);
    kv("cpus", ncpus);
    puts_hex(" classes=", classes);
    for (u32 k = 0; k < nhv; k++) {
        puts_hex(" hv=", hv_base[k]);
        puts_hex("-", hv_end[k]);
    }
    putc('\n');
    if (ncpus > 1)
        start_aps();
    cpus[0].joins = 1;
    go = 1;
    run_ops(&cpus[0]);
    for (u32 n = 1; n < njoined; n++)   /* bounded: an AP that never ends is reported, not waited for */
        wait_for(&cpus[n].done, 1, 400000000);
    u32 code = exit_code ? exit_code : njoined != ncpus;
    for (u32 n = 0; n < njoined; n++)
        if (!cpus[n].done || cpus[n].unexpected || cpus[n].init_fail)
            code = 1;
    finish(code);
}
