/*
 * conform: architectural conformance checks, run bare (QEMU -kernel) and under the hypervisor by
 * tests/integration/test_conformance.py, which requires identical result lines. Each check prints one
 * line on COM1:
 *     CONFORM <name>: PASS | FAIL <detail> | SKIP <reason>
 * judged by the architectural expectation only: nothing that legitimately differs between a bare and
 * a virtualized run (the hypervisor bit, the hypervisor's memory, timings, the amount of RAM) is ever
 * printed. The run ends with "CONFORM DONE n=<checks>" and leaves the emulator: a write to the
 * isa-debug-exit port 0xF4 (0 when every check passed, else 1), then the GUEST_EXIT hypercall when the
 * hypervisor is present, then Bochs' magic breakpoint (xchg bx,bx: a bare Bochs run's debugger script
 * quits there; a no-op elsewhere), then ACPI power-off.
 *
 * Command line: "cpus=N" (the CPUs the machine has, for the SMP checks), "only=a,b*" / "skip=a,b+"
 * (check names; a trailing * or + matches a prefix).
 *
 * Every check is independent: an unexpected exception prints its FAIL line and returns to the runner
 * (abort_check, __builtin_longjmp), which restores the machine state the checks change.
 */
#include <hv/abi.h>

#include "guest.h"

#define DEBUG_EXIT_PORT HV_DEBUG_EXIT_PORT
#define APIC 0xfee00000u
#define TPR 0x80u
#define ICR_LO 0x300u
#define ICR_HI 0x310u
#define LOW16 0x8000u        /* entry.S: .text16 is copied here */
#define AP_TRAMPOLINE 0x7000u

extern u8 __image_start[], __image_end[], __bss_start[];
extern const u32 isr32_table[32], isr64_table[32];
extern u8 text16_start[], text16_end[], t16_mov89[], t16_movc7[], t16_rep_stos[], t16_xchg[],
    t16_lock_xadd[], t16_fs16[], t16_lock_or[], t16_lock_and[], t16_lock_add[], t16_lock_cmpxchg[],
    t16_lock_bts[], t16_lock_btr[], t16_rep_movs[], t16_mov8b[], t16_fs_disp16[];
extern u8 ap_trampoline[], ap_trampoline_end[];
extern u64 gdt[];
extern struct {
    u16 limit;
    u32 base;
} __attribute__((packed)) idt32_desc;
extern struct {
    u16 limit;
    u64 base;
} __attribute__((packed)) idt64_desc;

u32 call64(u32 (*fn)(void));
u32 call16(u32 offset, u32 eax);
u32 real_roundtrip(void);
u32 unreal_apic_store(void);
void df_trigger(u32 esp);
void abort_stub(void);
void df_task_entry(void);
extern u8 df_ud2[], f64_pf_delivery_insn[], f64_pf_delivery_bp_insn[], f64_pf_delivery_bp_next[],
    f64_pf_delivery_int_insn[], f64_pf_delivery_int_next[];
u32 f64_mov89(void), f64_rex(void), f64_rex_sib(void), f64_movc7(void), f64_movabs_store(void),
    f64_movabs_load(void), f64_mov8b_rex(void), f64_xchg(void), f64_lock_xadd(void),
    f64_lock_cmpxchg(void), f64_lock_bts(void), f64_rep_stos(void), f64_rep_movs(void),
    f64_addr32(void), f64_gs_base(void), f64_lock_or(void), f64_lock_btr(void), f64_lmcheck(void),
    f64_pf_delivery(void), f64_pf_delivery_bp(void), f64_pf_delivery_int(void), f64_lock_and(void), f64_lock_add(void), f64_stos(void), f64_byte_store(void),
    f64_disp32_neg(void), f64_tf_cpuid(void);
extern u8 f64_tf_cpuid_next[];
extern volatile u32 lm_aborted, lm_vec, lm_fixup, lm_aux, lm_arg, lm_nlog, lm_log_vec[4], lm_log_err[4],
    lm_log_rip[4], lm_log_cr2[4], lm_log_rsp[4], lm_pf_pte, lm_pf_page;
extern volatile u32 df_error, df_cr2, df_link, df_eip, df_count, df_saved_esp, rm_result;

struct trap_frame {
    u32 edi, esi, ebp, esp, ebx, edx, ecx, eax;
    u32 vector, error, eip, cs, eflags;
};

/* ------------------------------------------------------------------------------------------ basics */
#define RDDR(n) ({ u32 _v; __asm__ volatile("movl %%db" #n ", %0" : "=r"(_v)); _v; })
#define WRDR(n, v) __asm__ volatile("movl %0, %%db" #n : : "r"((u32)(v)) : "memory")

/* Plain 32-bit accesses (89 / 8B with a register address) used to set up and verify each form. */
static inline void apic_w(u32 off, u32 v) { __asm__ volatile("movl %0, (%1)" : : "r"(v), "r"(APIC + off) : "memory"); }
static inline u32 apic_r(u32 off)
{
    u32 v;
    __asm__ volatile("movl (%1), %0" : "=r"(v) : "r"(APIC + off) : "memory");
    return v;
}

/* ------------------------------------------------------------------------------- check bookkeeping */
static const char *current;        /* name of the running check */
static u32 n_checks, n_failed;
static int reported;               /* the running check printed its line */
static void *jb[5];                /* __builtin_setjmp buffer of the runner */

static void line(const char *name, const char *verdict, const char *detail)
{
    puts("CONFORM ");
    puts(name);
    puts(": ");
    puts(verdict);
    if (detail && *detail) {
        putc(' ');
        puts(detail);
    }
    putc('\n');
}

/* The check's verdict: PASS, or FAIL with a detail and up to two values. */
static void result(int ok, const char *detail, u32 v1, u32 v2, int nvals)
{
    if (reported)
        return;
    reported = 1;
    if (ok) {
        line(current, "PASS", 0);
        return;
    }
    n_failed++;
    puts("CONFORM ");
    puts(current);
    puts(": FAIL ");
    puts(detail);
    if (nvals > 0) {
        putc(' ');
        puthex(v1);
    }
    if (nvals > 1) {
        putc(' ');
        puthex(v2);
    }
    putc('\n');
}
#define PASS_IF(cond, detail) result((cond), (detail), 0, 0, 0)
#define CHECK_EQ(got, want, detail) result((u32)(got) == (u32)(want), (detail), (u32)(got), (u32)(want), 2)

static void skip(const char *why)
{
    if (reported)
        return;
    reported = 1;
    line(current, "SKIP", why);
}

/* ---------------------------------------------------------------------------------------- traps */
/* Expected-fault recovery (ARM / LAND): the trap resumes at the armed address. */
volatile u32 fixup;
static volatile u32 t_count, t_vector, t_error, t_eip, t_eflags, t_cr2, t_dr6, t_db_count, t_nmi_count;
/*
 * The fixed IPI that ends the AP's `sti; hlt` (smp_hlt_intr): vector 31, the last gate of the 32-entry
 * IDTs. The APICs deliver vectors 16-255 (SDM Vol. 3A 11.5.2); 16-31 are only reserved by Intel for
 * exceptions, and no exception the checks raise uses 31.
 */
#define WAKE_VECTOR 31u
static volatile u32 t_wake_count;
static volatile u32 t_wake_eip[2];   /* where the first two wake interrupts return to (hlt_sti_pending) */

void abort_check(void);
void abort_check(void)
{
    __builtin_longjmp(jb, 1);
}

void trap(struct trap_frame *f);
void trap(struct trap_frame *f)
{
    if (f->vector == 2) {           /* NMI (the AP's, from the NMI IPI check) */
        __atomic_fetch_add(&t_nmi_count, 1, __ATOMIC_SEQ_CST);
        return;
    }
    if (f->vector == WAKE_VECTOR) {  /* the AP's fixed IPI (smp_hlt_intr), the BSP's (hlt_sti_pending) */
        u32 n = __atomic_fetch_add(&t_wake_count, 1, __ATOMIC_SEQ_CST);
        t_wake_eip[n & 1] = f->eip;
        apic_w(0xb0, 0);            /* EOI (SDM Vol. 3A 11.8.5) */
        return;
    }
    t_count++;
    t_vector = f->vector;
    t_error = f->error;
    t_eip = f->eip;
    t_eflags = f->eflags;
    if (f->vector == 14)
        t_cr2 = RDCR(2);
    if (f->vector == 1) {
        /* #DB: single step or breakpoint. Record DR6 and clear it (SDM 18.2.3: the processor never
           clears it), stop single-stepping, and set RF so an instruction breakpoint lets the
           instruction run on return (18.3.1.1). */
        t_dr6 = RDDR(6);
        WRDR(6, 0);
        t_db_count++;
        f->eflags = (f->eflags & ~0x100u) | 0x10000u;
        return;
    }
    if (fixup) {
        f->eip = fixup;
        f->cs = 0x08;
        fixup = 0;
        return;
    }
    /* unexpected: this check fails, the runner goes on with the next one */
    if (!reported) {
        reported = 1;
        n_failed++;
        puts("CONFORM ");
        puts(current ? current : "?");
        puts(": FAIL unexpected exception ");
        putdec(f->vector);
        puts(" error ");
        puthex(f->error);
        putc('\n');
    }
    f->eip = (u32)abort_stub;
    f->cs = 0x08;
    f->eflags &= ~0x100u;
}

#define ARM "movl $1f, fixup\n\t"
#define LAND "\n\tmovl $0, fixup\n1:"

static u64 idt32[32] __attribute__((aligned(8)));
static u64 idt64[64] __attribute__((aligned(16)));   /* 32 gates of 16 bytes */

static u64 gate32(u32 h) { return (h & 0xffff) | (u64)0x08 << 16 | (u64)0x8e00 << 32 | (u64)(h >> 16) << 48; }

static void setup_idts(void)
{
    for (int i = 0; i < 32; i++) {
        /* 32-bit interrupt gate, DPL 0 (SDM Vol. 3A 7.11, Figure 7-2) */
        idt32[i] = gate32(isr32_table[i]);
        /* 64-bit interrupt gate (SDM Vol. 3A 7.14.1, Figure 7-8): offset 63:32 is zero */
        u32 h = isr64_table[i];
        idt64[2 * i] = (h & 0xffff) | (u64)0x28 << 16 | (u64)0x8e00 << 32 | (u64)(h >> 16) << 48;
        idt64[2 * i + 1] = 0;
    }
    idt32_desc.limit = sizeof(idt32) - 1;
    idt32_desc.base = (u32)idt32;
    idt64_desc.limit = sizeof(idt64) - 1;
    idt64_desc.base = (u32)idt64;
    __asm__ volatile("lidt idt32_desc");
}

/* ------------------------------------------------------------------------------------ paging */
/* Identity map of the low 4 GiB in 2 MiB pages (PAE / 4-level formats share the PDs), the xAPIC's
   2 MiB page uncached. lm_pml4 -> lm_pdpt -> pd[4]; pae_pdpt (legacy PAE: PDPTEs have only P, PWT,
   PCD, SDM Vol. 3A 5.4.1) -> the same PDs. A 2 MiB region can be split into 4 KiB pages (split_pt). */
u64 lm_pml4[512] __attribute__((aligned(4096)));
static u64 lm_pdpt[512] __attribute__((aligned(4096)));
static u64 pd[4][512] __attribute__((aligned(4096)));
static u64 pae_pdpt[4] __attribute__((aligned(32)));
static u64 split_pt[512] __attribute__((aligned(4096)));
static u32 split_base = ~0u;

#define PG_P 1u
#define PG_RW 2u
#define PG_PWT 8u
#define PG_PCD 16u
#define PG_PS 0x80u

static void setup_paging(void)
{
    for (u32 i = 0; i < 2048; i++) {
        u64 pa = (u64)i << 21;
        u64 e = pa | PG_P | PG_RW | PG_PS;
        if (pa == (APIC & ~0x1fffffu))
            e |= PG_PCD | PG_PWT;
        pd[i / 512][i % 512] = e;
    }
    for (u32 i = 0; i < 4; i++) {
        lm_pdpt[i] = (u32)pd[i] | PG_P | PG_RW;
        pae_pdpt[i] = (u32)pd[i] | PG_P;
    }
    lm_pml4[0] = (u32)lm_pdpt | PG_P | PG_RW;
}

/* Map the 2 MiB region holding addr with 4 KiB pages (identity); returns the PTE of addr's page. */
static volatile u64 *pte_of(u32 addr)
{
    u32 base = addr & ~0x1fffffu;
    if (split_base != base) {
        if (split_base != ~0u)   /* restore the previous split region */
            pd[split_base >> 30][(split_base >> 21) & 511] = (u64)split_base | PG_P | PG_RW | PG_PS;
        for (u32 i = 0; i < 512; i++)
            split_pt[i] = (u64)(base + i * 4096) | PG_P | PG_RW;
        pd[base >> 30][(base >> 21) & 511] = (u32)split_pt | PG_P | PG_RW;
        split_base = base;
    }
    return &split_pt[(addr >> 12) & 511];
}

static void paging_off(void)
{
    u32 cr0 = RDCR(0);
    if (cr0 & 0x80000000u)
        WRCR(0, cr0 & ~0x80000000u);
    WRCR(4, RDCR(4) & ~0x20u);
}

static void pae_on(u32 cr3)
{
    WRCR(4, RDCR(4) | 0x20u);   /* CR4.PAE, then CR3, then CR0.PG (SDM Vol. 3A 5.1.2) */
    WRCR(3, cr3);
    WRCR(0, RDCR(0) | 0x80000000u);
}

/* ------------------------------------------------------------------------------------ multiboot */
static const struct mb_info *mbi;
static const char *cmdline = "";
/* Copies taken at entry, before this kernel writes low memory (0x6ff0, 0x7000, LOW16) or its .bss:
   the loader may have put the information block, map and command line anywhere free. In .data. */
#define DATA __attribute__((section(".data")))
static DATA struct mb_info mbi_copy;
static DATA u8 mmap_copy[2048];
static DATA char cmdline_copy[2048];
static u32 ncpus = 1;
static volatile u32 data_magic = 0xc0f0a5e1;   /* .data: the loader copied the file's bytes */
static u32 bss_probe[64];                      /* .bss: the loader zeroed it */

/* End of the memory-map region of type `type` containing [a, b), or 0 if no single region holds it. */
static u64 region_end(u64 a, u64 b, u32 type)
{
    if (!(mbi->flags & (1u << 6)))
        return 0;
    for (u32 at = mbi->mmap_addr; at < mbi->mmap_addr + mbi->mmap_length;) {
        const struct mb_mmap *e = (const struct mb_mmap *)at;
        if (e->type == type && a >= e->addr && b <= e->addr + e->len)
            return e->addr + e->len;
        at += e->size + 4;
    }
    return 0;
}

/* Does `name` appear in the comma-separated list at v (ends at space / NUL)? "x*" or "x+" matches a
   prefix ("+" for command lines that go through GRUB's config, where "*" would be expanded). */
static int in_list(const char *v, const char *name)
{
    while (*v && *v != ' ') {
        const char *a = v, *b = name;
        while (*a && *a != ',' && *a != ' ' && *a != '*' && *a != '+' && *a == *b)
            a++, b++;
        if (*a == '*' || *a == '+' || ((!*a || *a == ',' || *a == ' ') && !*b))
            return 1;
        while (*v && *v != ',' && *v != ' ')
            v++;
        if (*v == ',')
            v++;
    }
    return 0;
}

static int selected(const char *name)
{
    const char *v;
    if (cmdline_word(cmdline, "only=", &v) && !in_list(v, name))
        return 0;
    if (cmdline_word(cmdline, "skip=", &v) && in_list(v, name))
        return 0;
    return 1;
}

/* ================================================================================== the checks */
static void c_kernel_load(void)
{
    int zero = 1;
    for (u32 i = 0; i < 64; i++)
        zero &= bss_probe[i] == 0;
    u32 start = (u32)__image_start, end = (u32)__image_end;
    if (data_magic != 0xc0f0a5e1)
        return PASS_IF(0, ".data not loaded");
    if (!zero)
        return PASS_IF(0, ".bss not zeroed");
    PASS_IF(region_end(start, end, 1) != 0, "image not inside one usable memory-map region");
}

/* mem_upper (KiB above 1 MiB, Multiboot 3.3) is the end of the usable RAM from 1 MiB: the memory map's
   usable region holding 1 MiB ends there, and it covers this kernel. */
static void c_mem_upper(void)
{
    if (!(mbi->flags & 1u))
        return PASS_IF(0, "no mem_lower/mem_upper (flags bit 0)");
    u64 top = 0x100000ull + (u64)mbi->mem_upper * 1024;
    if (mbi->mem_lower > 640 || mbi->mem_lower < 64)
        return result(0, "mem_lower out of range (KiB)", mbi->mem_lower, 0, 1);
    if (top < (u32)__image_end)
        return PASS_IF(0, "mem_upper below the kernel's end");
    u64 end = region_end(0x100000, 0x100000 + 4096, 1);
    if (!end)
        return PASS_IF(0, "1 MiB not in a usable memory-map region");
    PASS_IF(end == top, "mem_upper disagrees with the memory map's region at 1 MiB");
}

static void c_mmap(void)
{
    if (!(mbi->flags & (1u << 6)))
        return PASS_IF(0, "no memory map (flags bit 6)");
    u32 n = 0, bad = 0;
    u64 prev_end = 0;
    for (u32 at = mbi->mmap_addr; at < mbi->mmap_addr + mbi->mmap_length; n++) {
        const struct mb_mmap *e = (const struct mb_mmap *)at;
        if (e->size < 20 || e->len == 0 || e->type == 0)
            bad++;
        if (e->type == 1 && e->addr < prev_end)
            bad++;                      /* usable regions overlapping an earlier region */
        if (e->addr + e->len > prev_end)
            prev_end = e->addr + e->len;
        at += e->size + 4;
    }
    if (!n || bad)
        return result(0, "malformed entries", bad, 0, 1);
    if (!region_end(0, 0x1000, 1) || !region_end(LOW16, LOW16 + 0x1000, 1))
        return PASS_IF(0, "low memory (0, 0x8000) not usable");
    PASS_IF(region_end((u32)__image_start, (u32)__image_end, 1) != 0, "kernel not in usable RAM");
}

static void c_exceptions(void)
{
    u32 seen[5];
    t_vector = ~0u;
    __asm__ volatile(ARM "ud2" LAND ::: "memory");
    seen[0] = t_vector;
    t_vector = ~0u;
    __asm__ volatile(ARM "int3" LAND ::: "memory");
    seen[1] = t_vector;
    t_vector = ~0u;
    u32 zero = 0;
    __asm__ volatile(ARM "xorl %%edx, %%edx; movl $1, %%eax; divl %0" LAND : : "r"(zero) : "eax", "edx", "memory");
    seen[2] = t_vector;
    t_vector = ~0u;
    /* selector 0x1233: index 0x246 beyond the GDT limit, TI = 0, RPL 3: #GP(0x1230) (SDM Vol. 3A 6.13) */
    __asm__ volatile(ARM "movw $0x1233, %%ax; movw %%ax, %%fs" LAND ::: "eax", "memory");
    seen[3] = t_vector == 13 ? t_error : 0xbad;
    t_vector = ~0u;
    __asm__ volatile(ARM "movl $0x7c, %%eax; movl %%eax, %%db7; movl $0, %%eax; movl %%eax, %%db7" LAND ::: "eax", "memory");
    seen[4] = t_vector;     /* no #GP: DR7 writes are fine at CPL 0 */
    __asm__ volatile("movw $0x10, %%ax; movw %%ax, %%fs" ::: "eax");
    if (seen[0] != 6 || seen[1] != 3 || seen[2] != 0)
        return result(0, "#UD/#BP/#DE vectors", seen[0] << 16 | seen[1] << 8, seen[2], 2);
    if (seen[3] != 0x1230)
        return result(0, "#GP error code (selector)", seen[3], 0x1230, 2);
    PASS_IF(seen[4] == ~0u, "DR7 write faulted");
}

static void c_apic_id_version(void)
{
    u32 a, b, c, d;
    cpuid(1, &a, &b, &c, &d);
    u32 id = apic_r(0x20) >> 24, ver = apic_r(0x30);
    if (id != b >> 24)
        return PASS_IF(0, "APIC ID differs from CPUID.1:EBX[31:24]");
    /* version 0x1X: integrated APIC (SDM Vol. 3A 11.4.8); at least 4 LVT entries (max LVT >= 3) */
    PASS_IF((ver & 0xf0) == 0x10 && ((ver >> 16) & 0xff) >= 3, "version register");
}

/* ---- 32-bit xAPIC access forms on TPR (SDM Vol. 3A 11.8.3.1: bits 7:0) ---- */
static void tpr_expect(u32 want) { CHECK_EQ(apic_r(TPR) & 0xff, want, "TPR read back"); }

static void c_a32_mov89(void)
{
    apic_w(TPR, 0);
    __asm__ volatile("movl %0, (%1)" : : "r"(0x21), "r"(APIC + TPR) : "memory");   /* 89 /r */
    tpr_expect(0x21);
}
static void c_a32_disp8(void)
{
    apic_w(TPR, 0);
    __asm__ volatile("movl %0, 0x70(%1)" : : "r"(0x22), "r"(APIC + 0x10) : "memory");   /* 89 /r disp8 */
    tpr_expect(0x22);
}
static void c_a32_sib_disp32(void)
{
    apic_w(TPR, 0);
    __asm__ volatile("movl %0, 0x400(%1,%2,4)" : : "r"(0x23), "r"(APIC - 0x400 + 0x40), "r"(0x10) : "memory");
    tpr_expect(0x23);
}
static void c_a32_abs_modrm(void)
{
    apic_w(TPR, 0);
    __asm__ volatile("movl %0, 0xfee00080" : : "c"(0x24) : "memory");   /* 89 0d disp32 */
    tpr_expect(0x24);
}
static void c_a32_moffs_store(void)
{
    apic_w(TPR, 0);
    __asm__ volatile("movl %0, 0xfee00080" : : "a"(0x25) : "memory");   /* a3 moffs32 */
    tpr_expect(0x25);
}
static void c_a32_movc7(void)
{
    apic_w(TPR, 0);
    __asm__ volatile("movl $0x26, (%0)" : : "r"(APIC + TPR) : "memory");   /* c7 /0 */
    tpr_expect(0x26);
}
static void c_a32_movc7_sib(void)
{
    apic_w(TPR, 0);
    __asm__ volatile("movl $0x27, 0x7c(%0,%1,1)" : : "r"(APIC), "r"(4) : "memory");   /* c7 /0 SIB disp8 */
    tpr_expect(0x27);
}
static void c_a32_mov8b(void)
{
    u32 v;
    apic_w(TPR, 0x28);
    __asm__ volatile("movl 0x40(%1,%2,8), %0" : "=r"(v) : "r"(APIC), "r"(8) : "memory");   /* 8b /r SIB */
    CHECK_EQ(v & 0xff, 0x28, "load");
}
static void c_a32_moffs_load(void)
{
    u32 v;
    apic_w(TPR, 0x29);
    __asm__ volatile("movl 0xfee00080, %0" : "=a"(v) : : "memory");   /* a1 moffs32 */
    CHECK_EQ(v & 0xff, 0x29, "load");
}
/* Byte and word accesses to APIC registers are model specific (SDM Vol. 3A 11.4.1: registers are
   32 bits wide, accessed with aligned 32-bit loads and stores): the check accepts both observed device
   behaviours (store ignored / applied; load gives 0 / the register's low byte) and requires no fault. */
static void c_a32_byte_stores(void)
{
    u32 bad = 0;
    apic_w(TPR, 0x10);
    __asm__ volatile("movb %0, (%1)" : : "q"((u8)0x2a), "r"(APIC + TPR) : "memory");   /* 88 /r */
    u32 v = apic_r(TPR) & 0xff;
    bad |= (v != 0x10 && v != 0x2a) << 0;
    apic_w(TPR, 0x10);
    __asm__ volatile("movb $0x2b, (%0)" : : "r"(APIC + TPR) : "memory");   /* c6 /0 */
    v = apic_r(TPR) & 0xff;
    bad |= (v != 0x10 && v != 0x2b) << 1;
    apic_w(TPR, 0x10);
    __asm__ volatile("movb %0, 0xfee00080" : : "a"((u8)0x2c) : "memory");   /* a2 moffs8 */
    v = apic_r(TPR) & 0xff;
    bad |= (v != 0x10 && v != 0x2c) << 2;
    apic_w(TPR, 0x10);
    __asm__ volatile("movw %0, (%1)" : : "r"((u16)0x2d), "r"(APIC + TPR) : "memory");   /* 66 89 /r */
    v = apic_r(TPR) & 0xff;
    bad |= (v != 0x10 && v != 0x2d) << 3;
    result(!bad, "stored value neither old nor new (bit per form 88,c6,a2,66-89)", bad, 0, 1);
}
static void c_a32_byte_loads(void)
{
    u32 bad = 0;
    u8 b;
    u16 w;
    apic_w(TPR, 0x2e);
    __asm__ volatile("movb (%1), %0" : "=q"(b) : "r"(APIC + TPR) : "memory");   /* 8a /r */
    bad |= (b != 0 && b != 0x2e) << 0;
    __asm__ volatile("movb 0xfee00080, %0" : "=a"(b) : : "memory");   /* a0 moffs8 */
    bad |= (b != 0 && b != 0x2e) << 1;
    __asm__ volatile("movw (%1), %0" : "=r"(w) : "r"(APIC + TPR) : "memory");   /* 66 8b /r */
    bad |= (w != 0 && w != 0x2e) << 2;
    result(!bad, "loaded value neither 0 nor the register (bit per form 8a,a0,66-8b)", bad, 0, 1);
}
static void c_a32_seg_es(void)
{
    apic_w(TPR, 0);
    __asm__ volatile("movl %0, %%es:(%1)" : : "r"(0x2f), "r"(APIC + TPR) : "memory");   /* 26 89 /r */
    tpr_expect(0x2f);
}
/* FS = selector 0x58, base 0xfee00000 (entry.S GDT): the address is the segment base + offset. */
static void c_a32_seg_fs_moffs(void)
{
    apic_w(TPR, 0);
    __asm__ volatile("movw $0x58, %%dx; movw %%dx, %%fs; movl %0, %%fs:0x80; movw $0x10, %%dx; movw %%dx, %%fs"
                     : : "a"(0x30) : "edx", "memory");   /* 64 a3 moffs32 */
    tpr_expect(0x30);
}
static void c_a32_addr16_fs(void)
{
    apic_w(TPR, 0);
    __asm__ volatile("movw $0x58, %%dx; movw %%dx, %%fs; movw $0x80, %%bx; movl %0, %%fs:(%%bx);"
                     "movw $0x10, %%dx; movw %%dx, %%fs"
                     : : "c"(0x31) : "edx", "ebx", "memory");   /* 64 67 89 0f: 16-bit addressing */
    tpr_expect(0x31);
}
static void c_a32_xchg(void)
{
    u32 r = 0x32;
    apic_w(TPR, 0x10);
    __asm__ volatile("xchgl %0, (%1)" : "+r"(r) : "r"(APIC + TPR) : "memory");   /* 87 /r */
    if (r != 0x10)
        return CHECK_EQ(r, 0x10, "old value");
    tpr_expect(0x32);
}
static void c_a32_or(void)
{
    apic_w(TPR, 0x10);
    __asm__ volatile("orl %0, (%1)" : : "r"(0x23), "r"(APIC + TPR) : "memory");   /* 09 /r, no lock */
    tpr_expect(0x33);
}
static void c_a32_lock_or(void)
{
    apic_w(TPR, 0x10);
    __asm__ volatile("lock orl $0x24, (%0)" : : "r"(APIC + TPR) : "memory");   /* f0 83 /1 ib */
    tpr_expect(0x34);
}
static void c_a32_lock_and(void)
{
    apic_w(TPR, 0x3f);
    __asm__ volatile("lock andl $0xf5, (%0)" : : "r"(APIC + TPR) : "memory");   /* f0 81 /4 id */
    tpr_expect(0x35);
}
static void c_a32_lock_add(void)
{
    apic_w(TPR, 0x10);
    __asm__ volatile("lock addl %0, (%1)" : : "r"(0x26), "r"(APIC + TPR) : "memory");   /* f0 01 /r */
    tpr_expect(0x36);
}
static void c_a32_lock_xadd(void)
{
    u32 r = 0x27;
    apic_w(TPR, 0x10);
    __asm__ volatile("lock xaddl %0, (%1)" : "+r"(r) : "r"(APIC + TPR) : "memory");   /* f0 0f c1 /r */
    if (r != 0x10)
        return CHECK_EQ(r, 0x10, "old value");
    tpr_expect(0x37);
}
static void c_a32_lock_cmpxchg(void)
{
    u32 a = 0x10;
    u8 z;
    apic_w(TPR, 0x10);
    __asm__ volatile("lock cmpxchgl %2, (%3); setz %1" : "+a"(a), "=q"(z) : "r"(0x38), "r"(APIC + TPR) : "memory");
    if (!z || (apic_r(TPR) & 0xff) != 0x38)
        return result(0, "equal: ZF, TPR", z, apic_r(TPR), 2);
    a = 0x99;   /* not equal: EAX gets the register, the register keeps its value (SDM Vol. 2A CMPXCHG) */
    __asm__ volatile("lock cmpxchgl %2, (%3); setz %1" : "+a"(a), "=q"(z) : "r"(0x11), "r"(APIC + TPR) : "memory");
    if (z || a != 0x38)
        return result(0, "not equal: ZF, EAX", z, a, 2);
    tpr_expect(0x38);
}
static void c_a32_lock_bts(void)
{
    u8 cf1, cf2;
    apic_w(TPR, 0x10);
    __asm__ volatile("lock btsl $5, (%1); setc %0" : "=q"(cf1) : "r"(APIC + TPR) : "memory");   /* 0f ba /5 */
    __asm__ volatile("lock btsl %1, (%2); setc %0" : "=q"(cf2) : "r"(3), "r"(APIC + TPR) : "memory");   /* 0f ab */
    if (cf1 || cf2)
        return result(0, "CF", cf1, cf2, 2);
    tpr_expect(0x38);
}
static void c_a32_lock_btr(void)
{
    u8 cf1, cf2;
    apic_w(TPR, 0x3b);
    __asm__ volatile("lock btrl $0, (%1); setc %0" : "=q"(cf1) : "r"(APIC + TPR) : "memory");   /* 0f ba /6 */
    __asm__ volatile("lock btrl %1, (%2); setc %0" : "=q"(cf2) : "r"(1), "r"(APIC + TPR) : "memory");   /* 0f b3 */
    if (!cf1 || !cf2)
        return result(0, "CF", cf1, cf2, 2);
    tpr_expect(0x38);
}
static void c_a32_stos(void)
{
    u32 edi = APIC + TPR;
    apic_w(TPR, 0);
    __asm__ volatile("cld; stosl" : "+D"(edi) : "a"(0x39) : "memory");   /* ab */
    if (edi != APIC + TPR + 4)
        return PASS_IF(0, "EDI not advanced by 4");
    tpr_expect(0x39);
}
static void c_a32_rep_stos(void)
{
    u32 edi = APIC + TPR, ecx = 1;
    apic_w(TPR, 0);
    __asm__ volatile("cld; rep stosl" : "+D"(edi), "+c"(ecx) : "a"(0x3a) : "memory");   /* f3 ab */
    if (edi != APIC + TPR + 4 || ecx)
        return result(0, "EDI/ECX after", edi - APIC, ecx, 2);
    tpr_expect(0x3a);
}
static void c_a32_rep_movs_store(void)
{
    static volatile u32 src = 0x3b;
    u32 esi = (u32)&src, edi = APIC + TPR, ecx = 1;
    apic_w(TPR, 0);
    __asm__ volatile("cld; rep movsl" : "+S"(esi), "+D"(edi), "+c"(ecx) : : "memory");   /* f3 a5 */
    if (edi != APIC + TPR + 4 || esi != (u32)&src + 4 || ecx)
        return PASS_IF(0, "ESI/EDI/ECX after");
    tpr_expect(0x3b);
}
static void c_a32_movs_load(void)
{
    static volatile u32 dst;
    u32 esi = APIC + TPR, edi = (u32)&dst;
    dst = 0;
    apic_w(TPR, 0x3c);
    __asm__ volatile("cld; movsl" : "+S"(esi), "+D"(edi) : : "memory");   /* a5: APIC -> RAM */
    CHECK_EQ(dst & 0xff, 0x3c, "copied");
}
static void c_a32_movs_apic_apic(void)
{
    u32 esi = APIC + TPR, edi = APIC + TPR, ecx = 1;
    apic_w(TPR, 0x3d);
    __asm__ volatile("cld; rep movsl" : "+S"(esi), "+D"(edi), "+c"(ecx) : : "memory");   /* APIC -> APIC */
    tpr_expect(0x3d);
}
static void c_a32_svr(void)
{
    u32 svr = apic_r(0xf0);
    apic_w(0xf0, (svr & ~0xffu) | 0xef);   /* spurious vector 0xef, enable bit kept (SDM 11.9) */
    u32 back = apic_r(0xf0);
    apic_w(0xf0, svr);
    if ((back & 0xff) != 0xef || (back & 0x100) != (svr & 0x100))
        return result(0, "SVR read back", back & 0x1ff, 0, 1);
    CHECK_EQ(apic_r(0xf0) & 0x1ff, svr & 0x1ff, "SVR restored");
}
static void c_a32_icr_high(void)
{
    apic_w(0x310, 0x01000000);   /* ICR[63:56] destination: a write sends nothing (SDM 11.6.1) */
    u32 back = apic_r(0x310);
    apic_w(0x310, 0);
    CHECK_EQ(back >> 24, 1, "ICR high destination");
}

/* ---- 16-bit protected-mode forms (entry.S .text16, CS = 16-bit segment) ---- */
static u32 t16(u8 *fn) { return call16((u32)(fn - text16_start), 0); }
static void c_a16_mov89(void) { CHECK_EQ(t16(t16_mov89) & 0xff, 0x61, "TPR"); }
static void c_a16_movc7_sib(void) { CHECK_EQ(t16(t16_movc7) & 0xff, 0x62, "TPR"); }
static void c_a16_rep_stos(void) { CHECK_EQ(t16(t16_rep_stos) & 0xff, 0x63, "TPR"); }
static void c_a16_xchg(void) { CHECK_EQ(t16(t16_xchg) & 0xffff, 0x6410, "TPR << 8 | old"); }
static void c_a16_lock_xadd(void) { CHECK_EQ(t16(t16_lock_xadd) & 0xffff, 0x6510, "TPR << 8 | old"); }
static void c_a16_fs_addr16(void) { CHECK_EQ(t16(t16_fs16) & 0xff, 0x66, "TPR"); }
static void c_a16_lock_or(void) { CHECK_EQ(t16(t16_lock_or) & 0xff, 0x71, "TPR"); }
static void c_a16_lock_and(void) { CHECK_EQ(t16(t16_lock_and) & 0xff, 0x62, "TPR"); }
static void c_a16_lock_add(void) { CHECK_EQ(t16(t16_lock_add) & 0xff, 0x63, "TPR"); }
static void c_a16_lock_cmpxchg(void) { CHECK_EQ(t16(t16_lock_cmpxchg) & 0xffff, 0x6401, "TPR << 8 | ZF"); }
static void c_a16_lock_bts(void) { CHECK_EQ(t16(t16_lock_bts) & 0xffff, 0x6500, "TPR << 8 | CF"); }
static void c_a16_lock_btr(void) { CHECK_EQ(t16(t16_lock_btr) & 0xffff, 0x6501, "TPR << 8 | CF"); }
static void c_a16_rep_movs(void)
{
    static volatile u32 src = 0x69;
    CHECK_EQ(call16((u32)(t16_rep_movs - text16_start), (u32)&src) & 0xff, 0x69, "TPR");
}
static void c_a16_mov8b(void) { CHECK_EQ(t16(t16_mov8b) & 0xff, 0x6a, "load"); }
static void c_a16_fs_disp16(void) { CHECK_EQ(t16(t16_fs_disp16) & 0xff, 0x6b, "TPR"); }
/* Real mode with 4 GiB data limits: the store and its read back in real mode, then from here. */
static void c_apic_real_unreal(void)
{
    u32 back = unreal_apic_store() & 0xff;
    if (back != 0x6c)
        return result(0, "TPR read in real mode", back, 0x6c, 2);
    tpr_expect(0x6c);
}

/* ---- 64-bit forms ---- */
static u32 run64(u32 (*fn)(void))
{
    lm_aux = 0;
    u32 v = call64(fn);
    if (lm_aborted)
        result(0, "exception in 64-bit code", lm_vec, 0, 1);
    return v;
}
#define A64(name, fn, want)                                                                        \
    static void name(void)                                                                         \
    {                                                                                              \
        u32 v = run64(fn);                                                                         \
        CHECK_EQ(v & 0xff, want, "TPR");                                                           \
    }
A64(c_a64_mov89, f64_mov89, 0x41)
A64(c_a64_rex, f64_rex, 0x42)
A64(c_a64_rex_sib, f64_rex_sib, 0x43)
A64(c_a64_movc7, f64_movc7, 0x44)
A64(c_a64_movabs_store, f64_movabs_store, 0x45)
A64(c_a64_movabs_load, f64_movabs_load, 0x46)
A64(c_a64_mov8b_rex, f64_mov8b_rex, 0x47)
A64(c_a64_lock_or, f64_lock_or, 0x39)
A64(c_a64_rep_movs, f64_rep_movs, 0x4c)
A64(c_a64_addr32, f64_addr32, 0x4d)
A64(c_a64_gs_base, f64_gs_base, 0x4e)
A64(c_a64_lock_and, f64_lock_and, 0x51)
A64(c_a64_lock_add, f64_lock_add, 0x52)
A64(c_a64_stos, f64_stos, 0x53)
A64(c_a64_disp32_neg, f64_disp32_neg, 0x55)
/* model specific like the 32-bit byte stores: the old value or the byte, no fault */
static void c_a64_byte_store(void)
{
    u32 v = run64(f64_byte_store) & 0xff;
    result(v == 0x10 || v == 0x54, "TPR neither old nor new", v, 0, 1);
}
static void c_a64_xchg(void)
{
    u32 v = run64(f64_xchg);
    if (lm_aux != 0x10)
        return CHECK_EQ(lm_aux, 0x10, "old value");
    CHECK_EQ(v & 0xff, 0x48, "TPR");
}
static void c_a64_lock_xadd(void)
{
    u32 v = run64(f64_lock_xadd);
    if (lm_aux != 0x10)
        return CHECK_EQ(lm_aux, 0x10, "old value");
    CHECK_EQ(v & 0xff, 0x49, "TPR");
}
static void c_a64_lock_cmpxchg(void)
{
    u32 v = run64(f64_lock_cmpxchg);
    if (lm_aux != 1)
        return PASS_IF(0, "ZF clear");
    CHECK_EQ(v & 0xff, 0x4a, "TPR");
}
static void c_a64_lock_bts(void)
{
    u32 v = run64(f64_lock_bts);
    if (lm_aux != 0)
        return PASS_IF(0, "CF set");
    CHECK_EQ(v & 0xff, 0x50, "TPR");
}
static void c_a64_lock_btr(void)
{
    u32 v = run64(f64_lock_btr);
    if (lm_aux != 1)
        return PASS_IF(0, "CF clear");
    CHECK_EQ(v & 0xff, 0x50, "TPR");
}
static void c_a64_rep_stos(void)
{
    u32 v = run64(f64_rep_stos);
    if (lm_aux != 4)
        return CHECK_EQ(lm_aux, 4, "RDI advance + RCX");
    CHECK_EQ(v & 0xff, 0x4b, "TPR");
}

/* ---- modes ---- */
/* protected -> real -> protected, protected -> long (64-bit code) -> protected, and real again. */
static void c_mode_switch(void)
{
    u32 r1 = real_roundtrip();
    if (r1 != 0x5245)
        return result(0, "real mode (marker | PE << 16)", r1, 0x5245, 2);
    u32 l = run64(f64_lmcheck);
    if (l != 0x6464)
        return result(0, "64-bit mode (EFER.LMA, 64-bit shift)", l, 0, 1);
    if (rdmsr(0xc0000080) & (1u << 10))
        return PASS_IF(0, "EFER.LMA still set after leaving long mode");
    if (RDCR(0) & 0x80000000u)
        return PASS_IF(0, "CR0.PG still set");
    u32 r2 = real_roundtrip();
    CHECK_EQ(r2, 0x5245, "real mode again (marker | PE << 16)");
}

/* ---- single step over intercepted instructions (SDM Vol. 3A 18.3.1.4): #DB after the instruction,
   DR6.BS set, EIP at the next instruction ---- */
#define TF_ON "pushfl; orl $0x100, (%%esp); popfl\n\t"
static void tf_verdict(u32 want_eip)
{
    if (t_db_count != 1)
        return result(0, "#DB count", t_db_count, 1, 2);
    if (!(t_dr6 & 0x4000))
        return result(0, "DR6.BS clear", t_dr6, 0, 1);
    CHECK_EQ(t_eip, want_eip, "#DB EIP (the instruction after)");
}
static void c_tf_cpuid(void)
{
    u32 after;
    t_db_count = 0;
    __asm__ volatile(TF_ON "cpuid\n2:\tnop\n\tmovl $2b, %0" : "=r"(after) : "a"(0), "c"(0) : "ebx", "edx", "memory");
    tf_verdict(after);
}
static void c_tf_rdmsr(void)
{
    u32 after;
    t_db_count = 0;
    __asm__ volatile(TF_ON "rdmsr\n2:\tnop\n\tmovl $2b, %0" : "=r"(after) : "c"(0xc0000080) : "eax", "edx", "memory");
    tf_verdict(after);
}
static void c_tf_wrmsr(void)
{
    u32 after;
    u64 efer = rdmsr(0xc0000080);
    t_db_count = 0;
    __asm__ volatile(TF_ON "wrmsr\n2:\tnop\n\tmovl $2b, %0"
                     : "=r"(after) : "c"(0xc0000080), "a"((u32)efer), "d"((u32)(efer >> 32)) : "memory");
    tf_verdict(after);
}
static void c_tf_mov_cr0(void)
{
    u32 after, cr0 = RDCR(0);
    t_db_count = 0;
    __asm__ volatile(TF_ON "movl %1, %%cr0\n2:\tnop\n\tmovl $2b, %0" : "=r"(after) : "r"(cr0) : "memory");
    tf_verdict(after);
}
static void c_tf_mov_cr4(void)
{
    u32 after, cr4 = RDCR(4);
    t_db_count = 0;
    __asm__ volatile(TF_ON "movl %1, %%cr4\n2:\tnop\n\tmovl $2b, %0" : "=r"(after) : "r"(cr4) : "memory");
    tf_verdict(after);
}
static void c_tf_mov_cr3(void)
{
    u32 after, cr3 = RDCR(3);
    t_db_count = 0;
    __asm__ volatile(TF_ON "movl %1, %%cr3\n2:\tnop\n\tmovl $2b, %0" : "=r"(after) : "r"(cr3) : "memory");
    tf_verdict(after);
}

static void c_tf_cpuid64(void)
{
    run64(f64_tf_cpuid);
    if (lm_aborted)
        return;
    if (lm_nlog != 1 || lm_log_vec[0] != 1)
        return result(0, "events (want one #DB)", lm_nlog, lm_log_vec[0], 2);
    if (!(lm_aux & 0x4000))
        return result(0, "DR6.BS clear", lm_aux, 0, 1);
    CHECK_EQ(lm_log_rip[0], (u32)f64_tf_cpuid_next, "#DB RIP (the instruction after)");
}

/* ---- hardware breakpoints (SDM Vol. 3A 18.2.4, 18.3.1) ---- */
static volatile u32 bp_var;
static void c_dr7_exec(void)
{
    u32 target;
    __asm__ volatile("movl $2f, %0" : "=r"(target));
    WRDR(6, 0);
    WRDR(0, target);
    t_db_count = 0;
    WRDR(7, 0x1u | 0x100u);   /* L0, LE; R/W0 = 00 (execute), LEN0 = 00 */
    __asm__ volatile("nop\n2:\tnop\n\tnop" ::: "memory");
    WRDR(7, 0);
    if (t_db_count != 1)
        return result(0, "#DB count", t_db_count, 1, 2);
    if ((t_dr6 & 0xf) != 1)
        return result(0, "DR6.B0..B3", t_dr6 & 0xf, 1, 2);
    CHECK_EQ(t_eip, target, "#DB EIP (fault: the breakpoint address)");
}
static void c_dr7_write(void)
{
    u32 after;
    WRDR(6, 0);
    WRDR(1, (u32)&bp_var);
    t_db_count = 0;
    WRDR(7, 0x4u | 0x100u | 1u << 20 | 3u << 22);   /* L1, R/W1 = 01 (write), LEN1 = 11 (4 bytes) */
    __asm__ volatile("movl $5, %1\n2:\tnop\n\tmovl $2b, %0" : "=r"(after), "=m"(bp_var) : : "memory");
    WRDR(7, 0);
    if (t_db_count != 1)
        return result(0, "#DB count", t_db_count, 1, 2);
    if ((t_dr6 & 0xf) != 2)
        return result(0, "DR6.B0..B3", t_dr6 & 0xf, 2, 2);
    CHECK_EQ(t_eip, after, "#DB EIP (trap: after the write)");
}
static void c_dr7_rw(void)
{
    u32 after, v;
    WRDR(6, 0);
    WRDR(2, (u32)&bp_var);
    t_db_count = 0;
    WRDR(7, 0x10u | 0x100u | 3u << 24 | 3u << 26);   /* L2, R/W2 = 11 (read or write), LEN2 = 11 */
    __asm__ volatile("movl %2, %1\n2:\tnop\n\tmovl $2b, %0" : "=r"(after), "=r"(v) : "m"(bp_var) : "memory");
    WRDR(7, 0);
    if (t_db_count != 1)
        return result(0, "#DB count", t_db_count, 1, 2);
    if ((t_dr6 & 0xf) != 4)
        return result(0, "DR6.B0..B3", t_dr6 & 0xf, 4, 2);
    CHECK_EQ(t_eip, after, "#DB EIP (trap: after the read)");
}
/* DR0-DR3 and DR7 keep their values across instructions the hypervisor intercepts. */
static void c_dr7_kept(void)
{
    u32 a, b, c, d;
    WRDR(3, 0x1234);
    WRDR(7, 0x40u | 0x100u | 1u << 28 | 3u << 30);   /* L3 armed on a write to an unused address */
    cpuid(0, &a, &b, &c, &d);
    (void)rdmsr(0xc0000080);
    WRCR(4, RDCR(4));
    u32 dr7 = RDDR(7), dr3 = RDDR(3);
    WRDR(7, 0);
    if (dr3 != 0x1234)
        return result(0, "DR3", dr3, 0x1234, 2);
    CHECK_EQ(dr7 & 0xffff03ffu, 0x40u | 0x100u | 1u << 28 | 3u << 30, "DR7");
}

/* ---- PAE paging, CR3 reloads (SDM Vol. 3A 5.4.1: PDPTEs loaded on MOV to CR3; 4.10.4.1) ---- */
static u64 pae_pdpt_b[4] __attribute__((aligned(32)));
static u64 pae_pd_alias[2][512] __attribute__((aligned(4096)));
static u64 pae_pt_alias[2][512] __attribute__((aligned(4096)));
static u32 pae_buf[2][1024] __attribute__((aligned(4096)));
#define ALIAS 0x80000000u   /* PDPTE 2: nothing else there */

static u32 alias_read(void) { return *(volatile u32 *)ALIAS; }
#define BARRIER() __asm__ volatile("" ::: "memory")   /* page-table stores stay in program order */

/* ----------------------------------------------------------------- MSRs (hv/core/msr_policy.c) */
/*
 * MTRRs (SDM Vol. 3A 13.11): MTRRcap and DEF_TYPE read the same twice; a legal value written to an
 * unused variable range (valid bit clear: no effect on memory types) and a fixed range rewritten with
 * its own value read back. Under the hypervisor these are the guest's own copies.
 */
static void c_msr_mtrr_readback(void)
{
    u32 a, b, c, d;
    cpuid(1, &a, &b, &c, &d);
    if (!(d & (1u << 12)))
        return skip("no MTRRs");
    u64 cap = rdmsr(0xfe), def = rdmsr(0x2ff);
    u32 vcnt = cap & 0xff, n = vcnt;
    for (u32 i = 0; i < vcnt && n == vcnt; i++)
        if (!(rdmsr(0x201 + 2 * i) & (1u << 11)))
            n = i;
    if (n == vcnt)
        return skip("no unused variable range");
    u64 base = rdmsr(0x200 + 2 * n);
    wrmsr(0x200 + 2 * n, 0x100000ull | 1);          /* WC at 1 MiB, range not valid */
    u64 back = rdmsr(0x200 + 2 * n);
    wrmsr(0x200 + 2 * n, base);
    if (rdmsr(0xfe) != cap || rdmsr(0x2ff) != def)
        return PASS_IF(0, "MTRRcap or DEF_TYPE changed");
    if ((cap & (1u << 8))) {
        u64 fix = rdmsr(0x250);
        wrmsr(0x250, fix);
        if (rdmsr(0x250) != fix)
            return PASS_IF(0, "FIX64K did not read back");
    }
    CHECK_EQ(back, 0x100000u | 1, "PHYSBASE");
}

/* EFER.NXE (where CPUID 8000_0001:EDX[20] has it) set and cleared reads back; EFER ends as it was. */
static void c_msr_efer_nxe(void)
{
    u32 a, b, c, d;
    cpuid(0x80000000, &a, &b, &c, &d);
    if (a < 0x80000001)
        return skip("no leaf 80000001H");
    cpuid(0x80000001, &a, &b, &c, &d);
    if (!(d & (1u << 20)))
        return skip("no NX");
    u64 efer = rdmsr(0xc0000080);
    wrmsr(0xc0000080, efer ^ (1ull << 11));
    u64 flipped = rdmsr(0xc0000080);
    wrmsr(0xc0000080, efer);
    if (rdmsr(0xc0000080) != efer)
        return PASS_IF(0, "EFER not restored");
    CHECK_EQ(flipped, efer ^ (1ull << 11), "EFER with NXE flipped");
}

/*
 * A software SMI: a write to the FADT's SMI_CMD port (ACPI 6.4 5.2.9) raises an SMI; the firmware's SMM
 * handler runs and RSM resumes here with every register as it was (SDM Vol. 3C 32.5, APM Vol. 2 10.3).
 * The value written is no command the FADT names (ACPI_ENABLE, ACPI_DISABLE, S4BIOS_REQ, PSTATE_CNT,
 * CST_CNT): the firmware does nothing but return. Sixteen of them, each with its own register values.
 */
static void c_smi_cmd(void)
{
    const u8 *fadt = acpi_fadt();
    if (!fadt)
        return skip("no FADT");
    u16 port = (u16) * (const u32 *)(fadt + 48);
    if (!port)
        return skip("no SMI_CMD");
    u8 cmd = 0x5a;
    while (cmd == fadt[52] || cmd == fadt[53] || cmd == fadt[54] || cmd == fadt[55] || cmd == fadt[95])
        cmd++;
    for (u32 i = 0; i < 16; i++) {
        u32 b = 0x11111111u * (i + 1), si = ~b, di = b ^ 0x5a5a5a5au, b2 = b, si2 = si, di2 = di, a = cmd;
        /* EAX ends as EFLAGS after minus EFLAGS before: 0 when the SMI left them alone */
        __asm__ volatile("pushf; pop %%ecx; outb %%al, %%dx; pushf; pop %%eax; sub %%ecx, %%eax"
                         : "+a"(a), "+b"(b2), "+S"(si2), "+D"(di2)
                         : "d"(port)
                         : "ecx", "memory", "cc");
        if (b2 != b || si2 != si || di2 != di)
            return result(0, "a register changed across the SMI: EBX, ESI", b2, si2, 2);
        if (a)
            return result(0, "EFLAGS changed across the SMI by", a, 0, 1);
    }
    PASS_IF(1, 0);
}

/*
 * STI; HLT with an interrupt already pending (a kernel's idle loop when the IPI that wakes it came
 * meanwhile): STI's shadow covers the HLT (SDM Vol. 2B STI, APM Vol. 3 STI), which runs, and the
 * pending interrupt ends it at once: the handler returns after the HLT. Returning to the HLT would halt
 * with the wake-up consumed; a one-shot timer on the same vector then ends that wait, and says so.
 */
static void c_hlt_sti_pending(void)
{
    apic_w(0xf0, apic_r(0xf0) | 0x100);     /* software-enabled (SDM Vol. 3A 11.4.7.1) */
    apic_w(TPR, 0);
    __asm__ volatile("cli");
    u32 wakes = t_wake_count, after, lint0 = apic_r(0x350);
    u8 imr1 = inb(0x21), imr2 = inb(0xa1);
    outb(0x21, 0xff);                       /* the 8259s' lines masked (their timer is vector 8 here) */
    outb(0xa1, 0xff);
    apic_w(0x350, lint0 | 0x10000);         /* and LINT0, their ExtINT input */
    apic_w(0x3e0, 0xb);                     /* timer: divide by 1 (11.5.4) */
    apic_w(0x320, WAKE_VECTOR);             /* one-shot, unmasked */
    apic_w(0x380, 200000000u);              /* the way out if the HLT waits: far after the IPI */
    apic_w(ICR_HI, 0);
    apic_w(ICR_LO, 0x44000 | WAKE_VECTOR);  /* fixed, assert, shorthand self (11.6.1) */
    for (u32 i = 0; i < 1000000 && !(apic_r(0x200 + (WAKE_VECTOR / 32) * 0x10) & (1u << (WAKE_VECTOR % 32))); i++)
        __asm__ volatile("pause");          /* until the IRR holds it: pending, IF clear */
    __asm__ volatile("movl $1f, %0\n\tsti\n\thlt\n1:\tcli" : "=r"(after) : : "memory");
    apic_w(0x320, 0x10000 | WAKE_VECTOR);   /* masked: a timer that fired meanwhile stays undelivered */
    apic_w(0x380, 0);
    apic_w(0x350, lint0);
    outb(0xa1, imr2);
    outb(0x21, imr1);
    if (t_wake_count == wakes)
        return PASS_IF(0, "the HLT ended without the pending interrupt");
    CHECK_EQ(t_wake_eip[wakes & 1], after, "the pending interrupt returned to (HLT+1 expected)");
}

static void c_pae_cr3(void)
{
    static u64 pdpt_a[4] __attribute__((aligned(32)));
    for (int i = 0; i < 2; i++) {
        for (int j = 0; j < 512; j++)
            pae_pd_alias[i][j] = pae_pt_alias[i][j] = 0;
        pae_pt_alias[i][0] = (u32)pae_buf[i] | PG_P | PG_RW;
        pae_pd_alias[i][0] = (u32)pae_pt_alias[i] | PG_P | PG_RW;
        pae_buf[i][0] = 0xa0a0a0a0u + (u32)i;
    }
    for (int i = 0; i < 4; i++)
        pdpt_a[i] = pae_pdpt_b[i] = pae_pdpt[i];
    pdpt_a[2] = (u32)pae_pd_alias[0] | PG_P;
    pae_pdpt_b[2] = (u32)pae_pd_alias[1] | PG_P;
    u32 got[5];
    BARRIER();
    pae_on((u32)pdpt_a);
    got[0] = alias_read();                       /* buf 0 */
    WRCR(3, (u32)pae_pdpt_b);
    got[1] = alias_read();                       /* buf 1 */
    *(volatile u32 *)ALIAS = 0xb1b1b1b1u;        /* a write through the alias lands in buf 1 */
    BARRIER();
    pae_pdpt_b[2] = (u32)pae_pd_alias[0] | PG_P; /* a PDPTE changed in memory, then CR3 reloaded */
    BARRIER();
    WRCR(3, (u32)pae_pdpt_b);
    got[2] = alias_read();                       /* buf 0 */
    BARRIER();
    pae_pt_alias[0][0] = (u32)pae_buf[1] | PG_P | PG_RW;   /* a PTE changed: MOV CR3 flushes the TLB */
    BARRIER();
    WRCR(3, RDCR(3));
    got[3] = alias_read();                       /* buf 1 */
    u32 cr4 = RDCR(4);
    paging_off();
    got[4] = pae_buf[1][0];
    if (!(cr4 & 0x20))
        return PASS_IF(0, "CR4.PAE did not stick");
    if (got[0] != 0xa0a0a0a0u || got[1] != 0xa0a0a0a1u)
        return result(0, "alias before/after the first CR3 switch", got[0], got[1], 2);
    if (got[4] != 0xb1b1b1b1u)
        return result(0, "write through the alias", got[4], 0xb1b1b1b1u, 2);
    if (got[2] != 0xa0a0a0a0u)
        return result(0, "PDPTE change not seen after a CR3 load", got[2], 0xa0a0a0a0u, 2);
    CHECK_EQ(got[3], 0xb1b1b1b1u, "PTE change not seen after a CR3 reload");
}

/* ---- #DF through a task gate (32-bit; SDM Vol. 3A 6.15 #DF, 7.3, Table 6-5) ---- */
struct tss32 {
    u32 link, esp0, ss0, esp1, ss1, esp2, ss2, cr3, eip, eflags, eax, ecx, edx, ebx, esp, ebp, esi, edi;
    u32 es, cs, ss, ds, fs, gs, ldt;
    u16 trap, iomap;
} __attribute__((packed));
struct tss32 main_tss __attribute__((aligned(128))), df_tss __attribute__((aligned(128)));
static u8 df_stack[4096] __attribute__((aligned(16)));
static u8 fresh[2][4096] __attribute__((aligned(4096)));   /* [0]: the fresh (not-present) page */

static u64 tss_desc(u32 base, u32 type)
{
    u32 limit = 103;
    return (limit & 0xffff) | (u64)(base & 0xffffff) << 16 | (u64)(0x80 | type) << 40 | (u64)(base >> 24) << 56;
}

static void c_df_task_gate(void)
{
    gdt[6] = tss_desc((u32)&main_tss, 9);   /* 0x30, available 32-bit TSS */
    gdt[7] = tss_desc((u32)&df_tss, 9);     /* 0x38 */
    main_tss.iomap = df_tss.iomap = sizeof(struct tss32);
    __asm__ volatile("movw $0x30, %%ax; ltr %%ax" ::: "eax");
    df_tss.cr3 = main_tss.cr3 = (u32)pae_pdpt;
    df_tss.eip = (u32)df_task_entry;
    df_tss.eflags = 0x2;
    df_tss.esp = (u32)df_stack + sizeof(df_stack);
    df_tss.cs = 0x08;
    df_tss.ss = df_tss.ds = df_tss.es = df_tss.fs = df_tss.gs = 0x10;
    df_tss.link = 0;
    df_count = 0;
    /* IDT[8]: task gate to the #DF TSS (SDM Vol. 3A Figure 7-2: type 5, P) */
    idt32[8] = (u64)0x38 << 16 | (u64)0x8500 << 32;
    volatile u64 *pte = pte_of((u32)fresh[0]);
    *pte &= ~(u64)PG_P;
    pae_on((u32)pae_pdpt);
    t_count = 0;
    df_trigger((u32)fresh[1]);              /* ud2 with ESP at the top of the not-present page */
    u32 pf_seen = t_count;
    paging_off();
    *pte |= PG_P;
    idt32[8] = gate32(isr32_table[8]);
    u32 tr;
    __asm__ volatile("str %0" : "=r"(tr));
    if (df_count != 1)
        return result(0, "#DF task ran (count)", df_count, 1, 2);
    if (pf_seen)
        return result(0, "a handler ran on the faulting stack", pf_seen, 0, 1);
    if (df_error != 0)
        return result(0, "#DF error code", df_error, 0, 2);
    if ((df_cr2 & ~0xfffu) != (u32)fresh[0])
        return PASS_IF(0, "CR2 not in the not-present stack page");
    if ((df_link & 0xffff) != 0x30)
        return result(0, "back link", df_link & 0xffff, 0x30, 2);
    if ((gdt[7] >> 40 & 0xf) != 9)
        return result(0, "#DF TSS still busy after IRET", (u32)(gdt[7] >> 40) & 0xf, 9, 2);
    CHECK_EQ(tr & 0xffff, 0x30, "TR after the return");
}

/* ---- #PF while delivering an exception onto a fresh page (64-bit, #PF on IST1) ---- */
static u64 tss64[13] __attribute__((aligned(16)));   /* 104 bytes (SDM Vol. 3A Figure 8-11) */
static u8 ist_stack[4096] __attribute__((aligned(4096)));

/* fn: the 64-bit routine; vec: the event it raises; insn: its instruction (the #PF's saved RIP: the
   event restarts, SDM Vol. 3A 6.15 #PF "Saved Instruction Pointer"); next: the event's own saved RIP
   (the instruction for a fault, the one after it for INT3 / INT n). */
static void pf_delivery(u32 rsp_offset, u32 (*fn)(void), u32 vec, const u8 *insn, const u8 *next)
{
    u32 base = (u32)tss64;
    tss64[4] = (u64)((u32)ist_stack + sizeof(ist_stack)) << 32;   /* IST1 at byte 36 */
    tss64[5] = 0;
    ((u16 *)tss64)[51] = 104;                                      /* I/O map base */
    gdt[9] = (103 & 0xffff) | (u64)(base & 0xffffff) << 16 | (u64)0x89 << 40 | (u64)(base >> 24) << 56;
    gdt[10] = 0;
    idt64[2 * 14] |= (u64)1 << 32;                                 /* #PF gate: IST1 */
    volatile u64 *pte = pte_of((u32)fresh[0]);
    *pte &= ~(u64)PG_P;
    lm_pf_pte = (u32)pte;
    lm_pf_page = (u32)fresh[0];
    lm_nlog = 0;
    lm_arg = (u32)fresh[1] + rsp_offset;
    run64(fn);
    idt64[2 * 14] &= ~((u64)7 << 32);
    *pte |= PG_P;
    if (lm_aborted)
        return;
    if (lm_nlog != 2)
        return result(0, "events seen (want #PF then the event)", lm_nlog, 2, 2);
    if (lm_log_vec[0] != 14 || lm_log_vec[1] != vec)
        return result(0, "order", lm_log_vec[0], lm_log_vec[1], 2);
    if (lm_log_err[0] != 2)     /* write, not present, supervisor (SDM Vol. 3A 5.7) */
        return result(0, "#PF error code", lm_log_err[0], 2, 2);
    if ((lm_log_cr2[0] & ~0xfffu) != (u32)fresh[0])
        return PASS_IF(0, "CR2 not in the fresh page");
    if (lm_log_rip[0] != (u32)insn)
        return result(0, "#PF saved RIP (want the instruction)", lm_log_rip[0] - (u32)insn, 0, 2);
    if (lm_log_rip[1] != (u32)next)
        return result(0, "event saved RIP", lm_log_rip[1] - (u32)insn, (u32)(next - insn), 2);
    if ((lm_log_rsp[0] & ~0xfffu) != ((u32)ist_stack & ~0xfffu))
        return PASS_IF(0, "#PF not on IST1");
    PASS_IF((lm_log_rsp[1] & ~0xfffu) == (u32)fresh[0], "event frame not on the fresh page");
}
static void c_pf_delivery(void)
{
    pf_delivery(0, f64_pf_delivery, 6, f64_pf_delivery_insn, f64_pf_delivery_insn);
}
static void c_pf_delivery_split(void)   /* SS, RSP, RFLAGS on the page above; CS and below on the fresh one */
{
    pf_delivery(24, f64_pf_delivery, 6, f64_pf_delivery_insn, f64_pf_delivery_insn);
}
static void c_pf_delivery_int3(void)
{
    pf_delivery(0, f64_pf_delivery_bp, 3, f64_pf_delivery_bp_insn, f64_pf_delivery_bp_next);
}
static void c_pf_delivery_intn(void)
{
    pf_delivery(0, f64_pf_delivery_int, 4, f64_pf_delivery_int_insn, f64_pf_delivery_int_next);
}

/* ---- SMP (SDM Vol. 3A 9.4.4, 11.6.1) ---- */
static volatile u32 ap_starts, ap_spins, ap_apic_id = ~0u;
static volatile u32 ap_halt_req, ap_halts, ap_halt_returns;
#define AP_HALT_CLI 1u
#define AP_HALT_STI 2u
#define AP_ARM_TIMER 3u
/* smp_init_timer: the AP's one-shot count, 10 ms at QEMU's 1 GHz APIC timer clock (divide by 1). */
#define AP_TIMER_COUNT 10000000u

void ap_main(void);
void ap_main(void)
{
    __asm__ volatile("lidt idt32_desc");
    ap_apic_id = apic_r(0x20) >> 24;
    /*
     * One VM exit at every start (CPUID exits unconditionally under VT-x and is intercepted under SVM):
     * a hypervisor that carried a halt over from before an INIT would halt the AP here (smp_hlt_init).
     */
    u32 a = 0, b, c = 0, d;
    __asm__ volatile("cpuid" : "+a"(a), "=b"(b), "+c"(c), "=d"(d));
    __atomic_fetch_add(&ap_starts, 1, __ATOMIC_SEQ_CST);
    for (;;) {   /* running: the INIT check interrupts this loop */
        u32 req = ap_halt_req;
        if (req == AP_HALT_CLI) {   /* smp_hlt_wake, smp_hlt_init: halt with interrupts off until an NMI (INIT) */
            ap_halt_req = 0;
            __atomic_fetch_add(&ap_halts, 1, __ATOMIC_SEQ_CST);
            __asm__ volatile("cli; hlt" ::: "memory");
            __atomic_fetch_add(&ap_halt_returns, 1, __ATOMIC_SEQ_CST);
        } else if (req == AP_HALT_STI) {   /* smp_hlt_intr: halt with interrupts on until an interrupt */
            apic_w(0xf0, apic_r(0xf0) | 0x100);   /* software-enabled: INIT left the SVR at 0xff (11.4.7.1) */
            apic_w(TPR, 0);
            ap_halt_req = 0;
            __atomic_fetch_add(&ap_halts, 1, __ATOMIC_SEQ_CST);
            __asm__ volatile("sti; hlt; cli" ::: "memory");   /* STI's shadow covers the HLT (SDM Vol. 2B STI) */
            __atomic_fetch_add(&ap_halt_returns, 1, __ATOMIC_SEQ_CST);
        } else if (req == AP_ARM_TIMER) {   /* smp_init_timer: a one-shot timer interrupt, vector F5h */
            apic_w(0xf0, apic_r(0xf0) | 0x100);
            apic_w(0x3e0, 0xb);             /* divide by 1 (SDM Vol. 3A 11.5.4) */
            apic_w(0x320, 0xf5);            /* LVT timer: one-shot, unmasked, fixed vector F5h */
            apic_w(0x380, AP_TIMER_COUNT);
            ap_halt_req = 0;
            __atomic_fetch_add(&ap_halts, 1, __ATOMIC_SEQ_CST);
        }
        __atomic_fetch_add(&ap_spins, 1, __ATOMIC_SEQ_CST);
        __asm__ volatile("pause");
    }
}

static void ipi(u32 dest, u32 lo)
{
    apic_w(ICR_HI, dest << 24);
    apic_w(ICR_LO, lo);
    for (u32 i = 0; i < 1000000 && (apic_r(ICR_LO) & (1u << 12)); i++)   /* delivery status */
        __asm__ volatile("pause");
}

static int wait_for(volatile u32 *v, u32 want)
{
    for (u32 spins = 0; spins < 300000000u; spins++) {   /* bounded by work, not time: generous */
        if (*v >= want)
            return 1;
        __asm__ volatile("pause");
    }
    return 0;
}

/* INIT-SIPI-SIPI to all but self (shorthand: the AP's ID is not known before it runs). */
static int start_ap(void)
{
    u32 before = ap_starts;
    u8 *dst = (u8 *)AP_TRAMPOLINE;
    for (u8 *src = ap_trampoline; src < ap_trampoline_end; src++)
        *dst++ = *src;
    apic_w(ICR_HI, 0);
    apic_w(ICR_LO, 3u << 18 | 0x4500);   /* INIT, level assert, all excluding self */
    delay(100000);
    for (int i = 0; i < 2 && ap_starts == before; i++) {
        apic_w(ICR_LO, 3u << 18 | 0x0600 | (AP_TRAMPOLINE >> 12));   /* STARTUP */
        delay(100000);
    }
    return wait_for(&ap_starts, before + 1);
}

/* The SMP checks drive one AP (one stack, INIT-SIPI-SIPI to all but self): they need cpus=2. */
static int smp_skip(void)
{
    if (ncpus == 1)
        skip("cpus=1");
    else if (ncpus > 2)
        skip("the SMP checks drive exactly one AP: run them with cpus=2");
    return ncpus != 2;
}

static void c_smp_start(void)
{
    if (smp_skip())
        return;
    if (ap_starts)
        return PASS_IF(1, "");
    PASS_IF(start_ap(), "the AP did not start");
}

static int ensure_ap(void)
{
    if (!ap_starts && !start_ap()) {
        PASS_IF(0, "the AP did not start");
        return 0;
    }
    return 1;
}

static void c_smp_nmi_ipi(void)
{
    if (smp_skip())
        return;
    if (!ensure_ap())
        return;
    u32 before = t_nmi_count;
    ipi(ap_apic_id, 0x4400);   /* NMI, level assert, physical destination */
    if (!wait_for(&t_nmi_count, before + 1))
        return PASS_IF(0, "no NMI on the AP");
    u32 s = ap_spins;
    PASS_IF(wait_for(&ap_spins, s + 1000), "the AP did not resume after its NMI");
}

/*
 * HLT ends with an interrupt, an NMI, SMI, INIT or RESET (SDM Vol. 2A HLT): the AP halts with
 * interrupts off and must stay halted while this CPU stores to its own xAPIC page until the NMI IPI
 * wakes it, once. The stores are MOVNTI (0F C3), which an MMIO decoder may not know: a hypervisor then
 * single-steps them and keeps the other CPUs out of the guest meanwhile — without waking their HLT.
 */
/* The AP halts (AP_HALT_*); then this CPU's MOVNTI stores to its xAPIC TPR must leave it halted. */
static int ap_halts_through_stores(u32 how)
{
    u32 halts = ap_halts, returns = ap_halt_returns;
    ap_halt_req = how;
    if (!wait_for(&ap_halts, halts + 1)) {
        PASS_IF(0, "the AP did not reach its HLT");
        return 0;
    }
    delay(2000000);
    for (u32 i = 0; i < 8; i++)     /* ends at 0 */
        __asm__ volatile("movnti %0, (%1)" : : "r"(i & 1 ? 0u : 0x10u), "r"(APIC + TPR) : "memory");
    delay(2000000);
    if (ap_halt_returns != returns) {
        PASS_IF(0, "the AP left its HLT without an interrupt or NMI");
        return 0;
    }
    return 1;
}

static void c_smp_hlt_wake(void)
{
    if (smp_skip() || !ensure_ap())
        return;
    u32 returns = ap_halt_returns, nmis = t_nmi_count;
    if (!ap_halts_through_stores(AP_HALT_CLI))
        return;
    ipi(ap_apic_id, 0x4400);   /* NMI, level assert, physical destination */
    if (!wait_for(&ap_halt_returns, returns + 1))
        return PASS_IF(0, "the NMI did not end the AP's HLT");
    PASS_IF(t_nmi_count == nmis + 1 && ap_halt_returns == returns + 1, "not one NMI and one HLT end");
}

/*
 * The same with interrupts on (`sti; hlt`, a kernel's idle loop): the stores leave the HLT alone, one
 * fixed IPI ends it through the AP's handler, which returns after the HLT.
 */
static void c_smp_hlt_intr(void)
{
    if (smp_skip() || !ensure_ap())
        return;
    u32 returns = ap_halt_returns, wakes = t_wake_count, nmis = t_nmi_count;
    if (!ap_halts_through_stores(AP_HALT_STI))
        return;
    ipi(ap_apic_id, 0x4000 | WAKE_VECTOR);   /* fixed, level assert, physical destination */
    if (!wait_for(&ap_halt_returns, returns + 1))
        return PASS_IF(0, "the interrupt did not end the AP's HLT");
    PASS_IF(t_wake_count == wakes + 1 && t_nmi_count == nmis && ap_halt_returns == returns + 1,
            "not one interrupt and one HLT end");
}

/* SIPI to the AP (twice at most, SDM Vol. 3A 9.4.4.1) until it starts again, then it must run. */
static void restart_ap(u32 starts_before)
{
    for (int i = 0; i < 2 && ap_starts == starts_before; i++) {
        ipi(ap_apic_id, 0x0600 | (AP_TRAMPOLINE >> 12));
        delay(100000);
    }
    if (!wait_for(&ap_starts, starts_before + 1))
        return PASS_IF(0, "the AP did not restart at the SIPI vector");
    u32 s = ap_spins;
    PASS_IF(wait_for(&ap_spins, s + 1000), "the restarted AP is not running");
}

/*
 * INIT ends HLT as well (SDM Vol. 2A HLT): the halted AP goes to wait-for-SIPI (9.4.2), not back to
 * its HLT nor past it, and a SIPI restarts it.
 */
static void c_smp_hlt_init(void)
{
    if (smp_skip() || !ensure_ap())
        return;
    u32 returns = ap_halt_returns, before = ap_starts;
    if (!ap_halts_through_stores(AP_HALT_CLI))
        return;
    ipi(ap_apic_id, 0x4500);   /* INIT, level assert, physical destination */
    delay(2000000);
    if (ap_halt_returns != returns || ap_starts != before)
        return PASS_IF(0, "the AP went on after its HLT at INIT instead of waiting for SIPI");
    restart_ap(before);
}

static void c_smp_init_sipi(void)
{
    if (smp_skip())
        return;
    if (!ensure_ap())
        return;
    u32 s = ap_spins;
    if (!wait_for(&ap_spins, s + 1000))
        return PASS_IF(0, "the AP is not running");
    u32 before = ap_starts;
    ipi(ap_apic_id, 0x4500);   /* INIT to the running AP: it waits for SIPI (SDM 9.4.2) */
    delay(2000000);            /* let the INIT land (the AP may be a host thread that is not running) */
    u32 s1 = ap_spins;
    delay(2000000);
    if (ap_spins != s1)
        return PASS_IF(0, "the AP kept running after INIT");
    if (ap_starts != before)
        return PASS_IF(0, "the AP restarted without a SIPI");
    restart_ap(before);
}

/*
 * INIT resets the local APIC: every LVT entry masked (SDM Vol. 3A 11.4.7.1, 9.4.2). The AP arms a
 * one-shot timer and gets INIT before it expires; it expires while the AP waits for SIPI, where nothing
 * is delivered, and a SIPI restarts the AP. (A hypervisor that emulates INIT keeps the CPU's APIC: its
 * timer's class-15 vector passed the parked CPU's TPR into the host's HLT.)
 */
static void c_smp_init_timer(void)
{
    if (smp_skip() || !ensure_ap())
        return;
    u32 before = ap_starts, armed = ap_halts;
    ap_halt_req = AP_ARM_TIMER;
    if (!wait_for(&ap_halts, armed + 1))
        return PASS_IF(0, "the AP did not arm its timer");
    ipi(ap_apic_id, 0x4500);   /* INIT, level assert, physical destination */
    for (u32 i = 0; i < 4; i++)
        delay(2000000);        /* the timer's 10 ms pass while the AP waits for SIPI */
    if (ap_starts != before)
        return PASS_IF(0, "the AP restarted without a SIPI");
    restart_ap(before);
}

/* ================================================================================== runner */
struct check {
    const char *name;
    void (*fn)(void);
};
static const struct check checks[] = {
    {"kernel_load", c_kernel_load},
    {"mem_upper", c_mem_upper},
    {"mmap", c_mmap},
    {"exceptions", c_exceptions},
    {"apic_id_version", c_apic_id_version},
    {"apic32_mov89", c_a32_mov89},
    {"apic32_disp8", c_a32_disp8},
    {"apic32_sib_disp32", c_a32_sib_disp32},
    {"apic32_abs_modrm", c_a32_abs_modrm},
    {"apic32_moffs_store", c_a32_moffs_store},
    {"apic32_movc7", c_a32_movc7},
    {"apic32_movc7_sib", c_a32_movc7_sib},
    {"apic32_mov8b", c_a32_mov8b},
    {"apic32_moffs_load", c_a32_moffs_load},
    {"apic32_byte_word_stores", c_a32_byte_stores},
    {"apic32_byte_word_loads", c_a32_byte_loads},
    {"apic32_seg_es", c_a32_seg_es},
    {"apic32_seg_fs_moffs", c_a32_seg_fs_moffs},
    {"apic32_addr16_fs", c_a32_addr16_fs},
    {"apic32_xchg", c_a32_xchg},
    {"apic32_or", c_a32_or},
    {"apic32_lock_or", c_a32_lock_or},
    {"apic32_lock_and", c_a32_lock_and},
    {"apic32_lock_add", c_a32_lock_add},
    {"apic32_lock_xadd", c_a32_lock_xadd},
    {"apic32_lock_cmpxchg", c_a32_lock_cmpxchg},
    {"apic32_lock_bts", c_a32_lock_bts},
    {"apic32_lock_btr", c_a32_lock_btr},
    {"apic32_stos", c_a32_stos},
    {"apic32_rep_stos", c_a32_rep_stos},
    {"apic32_rep_movs_store", c_a32_rep_movs_store},
    {"apic32_movs_load", c_a32_movs_load},
    {"apic32_movs_apic_apic", c_a32_movs_apic_apic},
    {"apic32_svr", c_a32_svr},
    {"apic32_icr_high", c_a32_icr_high},
    {"apic16_mov89", c_a16_mov89},
    {"apic16_movc7_sib", c_a16_movc7_sib},
    {"apic16_rep_stos", c_a16_rep_stos},
    {"apic16_xchg", c_a16_xchg},
    {"apic16_lock_xadd", c_a16_lock_xadd},
    {"apic16_fs_addr16", c_a16_fs_addr16},
    {"apic16_lock_or", c_a16_lock_or},
    {"apic16_lock_and", c_a16_lock_and},
    {"apic16_lock_add", c_a16_lock_add},
    {"apic16_lock_cmpxchg", c_a16_lock_cmpxchg},
    {"apic16_lock_bts", c_a16_lock_bts},
    {"apic16_lock_btr", c_a16_lock_btr},
    {"apic16_rep_movs", c_a16_rep_movs},
    {"apic16_mov8b", c_a16_mov8b},
    {"apic16_fs_disp16", c_a16_fs_disp16},
    {"apic_real_unreal", c_apic_real_unreal},
    {"apic64_mov89", c_a64_mov89},
    {"apic64_rex", c_a64_rex},
    {"apic64_rex_sib", c_a64_rex_sib},
    {"apic64_movc7", c_a64_movc7},
    {"apic64_movabs_store", c_a64_movabs_store},
    {"apic64_movabs_load", c_a64_movabs_load},
    {"apic64_mov8b_rex", c_a64_mov8b_rex},
    {"apic64_xchg", c_a64_xchg},
    {"apic64_lock_or", c_a64_lock_or},
    {"apic64_lock_xadd", c_a64_lock_xadd},
    {"apic64_lock_cmpxchg", c_a64_lock_cmpxchg},
    {"apic64_lock_bts", c_a64_lock_bts},
    {"apic64_lock_btr", c_a64_lock_btr},
    {"apic64_rep_stos", c_a64_rep_stos},
    {"apic64_rep_movs", c_a64_rep_movs},
    {"apic64_addr32", c_a64_addr32},
    {"apic64_gs_base", c_a64_gs_base},
    {"apic64_lock_and", c_a64_lock_and},
    {"apic64_lock_add", c_a64_lock_add},
    {"apic64_stos", c_a64_stos},
    {"apic64_disp32_neg", c_a64_disp32_neg},
    {"apic64_byte_store", c_a64_byte_store},
    {"mode_switch", c_mode_switch},
    {"tf_cpuid", c_tf_cpuid},
    {"tf_rdmsr", c_tf_rdmsr},
    {"tf_wrmsr", c_tf_wrmsr},
    {"tf_mov_cr0", c_tf_mov_cr0},
    {"tf_mov_cr3", c_tf_mov_cr3},
    {"tf_mov_cr4", c_tf_mov_cr4},
    {"tf_cpuid64", c_tf_cpuid64},
    {"dr7_exec", c_dr7_exec},
    {"dr7_write", c_dr7_write},
    {"dr7_rw", c_dr7_rw},
    {"dr7_kept", c_dr7_kept},
    {"pae_cr3", c_pae_cr3},
    {"msr_mtrr_readback", c_msr_mtrr_readback},
    {"msr_efer_nxe", c_msr_efer_nxe},
    {"df_task_gate", c_df_task_gate},
    {"pf_delivery", c_pf_delivery},
    {"pf_delivery_split", c_pf_delivery_split},
    {"pf_delivery_int3", c_pf_delivery_int3},
    {"pf_delivery_intn", c_pf_delivery_intn},
    {"smi_cmd", c_smi_cmd},
    {"hlt_sti_pending", c_hlt_sti_pending},
    {"smp_start", c_smp_start},
    {"smp_nmi_ipi", c_smp_nmi_ipi},
    {"smp_hlt_wake", c_smp_hlt_wake},
    {"smp_hlt_intr", c_smp_hlt_intr},
    {"smp_hlt_init", c_smp_hlt_init},
    {"smp_init_sipi", c_smp_init_sipi},
    {"smp_init_timer", c_smp_init_timer},
};

/* What the checks change, back to the state every check starts from. */
static void restore(void)
{
    fixup = 0;
    paging_off();
    __asm__ volatile("lidt idt32_desc");
    __asm__ volatile("movw $0x10, %%ax; movw %%ax, %%ds; movw %%ax, %%es; movw %%ax, %%fs; movw %%ax, %%gs" ::: "eax");
    WRDR(7, 0);
    WRDR(6, 0);
    idt32[8] = gate32(isr32_table[8]);
    idt64[2 * 14] &= ~((u64)7 << 32);
    if (split_base != ~0u)
        for (u32 i = 0; i < 512; i++)
            split_pt[i] |= PG_P;
    apic_w(TPR, 0);
    lm_pf_pte = 0;
    lm_fixup = 0;
}

static void run_checks(void)
{
    static volatile u32 i;   /* survives __builtin_longjmp */
    for (i = 0; i < sizeof(checks) / sizeof(checks[0]); i++) {
        if (!selected(checks[i].name))
            continue;
        current = checks[i].name;
        reported = 0;
        n_checks++;
        if (__builtin_setjmp(jb) == 0) {
            checks[i].fn();
            if (!reported)
                result(0, "no verdict", 0, 0, 0);
        }
        restore();
    }
}

/* ---------------------------------------------------------------------------------------- the end */
static int hv_present(int *amd)
{
    u32 a, b, c, d;
    cpuid(0, &a, &b, &c, &d);
    *amd = b == 0x68747541;   /* "Auth"enticAMD */
    cpuid(1, &a, &b, &c, &d);
    if (!(c >> 31 & 1))
        return 0;
    cpuid(0x40000000, &a, &b, &c, &d);
    return b == 0x72747668 && c == 0x00656361;   /* "hvtrace" */
}

static void finish(void)
{
    puts("CONFORM DONE n=");
    putdec(n_checks);
    putc('\n');
    u8 code = n_failed ? 1 : 0;
    outb(DEBUG_EXIT_PORT, code);   /* isa-debug-exit: QEMU exits with (code << 1) | 1 */
    delay(100000);
    int amd;
    if (hv_present(&amd)) {
        hypercall(amd, HV_HC_GUEST_EXIT, code ? HV_STATUS_FAIL : HV_STATUS_PASS);
        delay(100000);
    }
    __asm__ volatile("xchgw %bx, %bx");   /* Bochs' magic breakpoint: the project's debugger script quits */
    delay(100000);
    acpi_poweroff(acpi_pm1a_cnt());
    for (;;)
        __asm__ volatile("cli; hlt");
}

void conform_main(u32 magic, const struct mb_info *info);
void conform_main(u32 magic, const struct mb_info *info)
{
    mbi_copy = *info;
    mbi = &mbi_copy;
    cmdline = mb_cmdline(cmdline_copy, sizeof(cmdline_copy), magic, info);
    if (info->flags & (1u << 6)) {
        u32 len = info->mmap_length < sizeof(mmap_copy) ? info->mmap_length : sizeof(mmap_copy);
        for (u32 i = 0; i < len; i++)
            mmap_copy[i] = ((const u8 *)info->mmap_addr)[i];
        mbi_copy.mmap_addr = (u32)mmap_copy;
        mbi_copy.mmap_length = len;
    }
    const char *v;
    if (cmdline_word(cmdline, "cpus=", &v)) {
        ncpus = 0;
        while (*v >= '0' && *v <= '9')
            ncpus = ncpus * 10 + (u32)(*v++ - '0');
        if (!ncpus)
            ncpus = 1;
    }
    console_init();   /* harmless when there is no UART */
    setup_idts();
    setup_paging();
    for (u8 *s = text16_start, *d = (u8 *)LOW16; s < text16_end; s++, d++)
        *d = *s;
    puts("CONFORM START\n");
    if (magic != 0x2badb002) {
        current = "multiboot";
        result(0, "bad magic", magic, 0, 1);
    }
    run_checks();
    finish();
}
