/*
 * mbtest: a multiboot kernel that checks the machine the hypervisor gives a loaded guest, then ends
 * the run with the HV_HC_GUEST_EXIT hypercall (status 0 when every step passed). Each step prints
 * "mbtest: step NAME: PASS|FAIL detail" on COM1:
 *   multiboot   EAX magic, information block with memory map and command line
 *   memmap      one usable range from 1 MiB up to the hypervisor's region (reserved, at the top of RAM),
 *               mem_upper its size, this kernel in usable RAM; prints mem_lower/mem_upper and the map
 *   bss         1 MiB of BSS (over where the loader put the modules, linked at 1 MiB) reads zero
 *   cpuid       hypervisor bit and "hvtrace" leaves; VMX and SVM hidden; CPUID.1:ECX.OSXSAVE and
 *               CPUID.7:ECX.OSPKE follow this guest's CR4.OSXSAVE / CR4.PKE (0 at entry, 1 once set),
 *               not the host's; the detail says which were checked set (the CPU has XSAVE / PKU)
 *   msr         a VMX capability MSR raises #GP; EFER.SVME reads 0
 *   cr4         CR4.VMXE reads 0
 *   exceptions  #UD (intercepted and reflected), #BP and #DE delivered through this kernel's IDT
 *   isolation   a write and a read of hypervisor memory fault with #GP (blocked and recorded)
 *   hypercall   PING answers "HVTR"
 *   apic        stores to the xAPIC page (TPR) are trapped and emulated, a read between them is not:
 *               two more stage-2 fault exits, and the values read back from the real APIC
 *   mmio        other instruction forms on the xAPIC page are emulated too: MOV moffs32, EAX (A3) to
 *               the ICR high word, LOCK OR, REP MOVSD from RAM and XCHG on the TPR (restored); five
 *               stage-2 fault exits
 *   ap          with "cpus=N" (N > 1) on the command line: INIT-SIPI-SIPI to all other CPUs starts
 *               each in real mode at the trampoline; every AP reaches 32-bit code, sees the hypervisor
 *               bit and gets an answer to the PING hypercall (it runs virtualized). With "x2apic" the
 *               BSP switches its APIC to x2APIC mode and sends them through the ICR MSR (0x830)
 *   ap_real_mode_gp each AP's RDMSR of a VMX MSR in real mode: #GP through the IVT, no error code
 *   ap_init_again  then INIT-SIPI to the running (halted) APs: each restarts once, virtualized
 *   ap_init_sipi_now  then INIT and SIPI with no wait between: each AP still restarts once
 *   cr_reserved    MOV CR0 with NW but not CD, MOV CR4 with reserved bit 31: #GP, nothing changed
 * and the architectural behaviour a hypervisor easily gets wrong:
 *   tf_emulated    RFLAGS.TF over CPUID, RDMSR, MOV CR4: the #DB trap after each, DR6.BS set
 *   dr7            a DR0 execution breakpoint armed before an exit fires after it
 *   getsec         GETSEC raises #UD (no SMX)
 *   apic_fallback  MOVNTI to the TPR (an instruction the MMIO decoder does not know) takes effect
 *   x2apic_msr_xapic_mode  WRMSR to the x2APIC ICR (0x830) in xAPIC mode raises #GP
 *   prefixes       CPUID and RDMSR with legal prefixes (66, 2E, F3, 3E) behave as without
 *   insn_len_remap under PAE paging, code at one linear page: 3E 0F A2 40 C3 (prefixed CPUID; INC EAX;
 *                  RET), then the page remapped (same RIP) to 0F A2 40 40 C3 (called twice: the second
 *                  finds the translation cached), remapped back, then those bytes rewritten in place to
 *                  the unprefixed form: each CPUID exits and is stepped over by its own length (EAX + 1,
 *                  + 2, + 2, + 1, + 2; a length decoded from stale bytes or a stale translation gives the
 *                  other). The hypervisor caches code translations (guest_mem.c), and its CPUID fast path
 *                  reads through that cache (exit_fast.h)
 *   nmi_self       an NMI IPI to its own APIC ID arrives once
 *   db_hole_stack  a single-step #DB whose frame lands on a first-touched page (the VGA text buffer,
 *                  a memory-map hole the hypervisor maps on demand) is delivered, not lost
 *   int3_hole_stack the same for INT3: delivered once, returning after the INT3
 *   double_fault_task #GP with a not-present #GP gate is #DF, through a task gate to another task,
 *                  which IRETs back (a task switch each way)
 * and the MSR policy (hv/core/msr_policy.c, one block near the end):
 *   msr_pt         Intel PT's RTIT_OUTPUT_BASE / MASK_PTRS / CTL writes and a read raise #GP, CPUID hides PT
 *   msr_mtrr       MTRRs: reserved types, reserved bits, bits above MAXPHYADDR, a range past VCNT and a
 *                  write of MTRRcap raise #GP; a legal PHYSBASE reads back its own value
 *   msr_tsc        a write of IA32_TSC moves the guest's RDTSC (the host's TSC: checked from the host)
 *   msr_host_owned AMD: SYSCFG readable; SYSCFG, TOP_MEM, TOP_MEM2, IORR, HWCR writes #GP (Intel:
 *                  BIOS_UPDT_TRIG write #GP)
 *   efer_bits      EFER reserved bit 1 and AutoIBRS without CPUID #GP; on AMD, FFXSR (where CPUID names it)
 *                  accepted and reads back
 * With "debug_exit=N" it ends through the isa-debug-exit port instead (debug_exit_option()).
 * With "exit_loop" it runs no step: under PAE paging it exits in a loop forever (exit_loop_option()).
 * With "spin_irq" it runs no step: it spins with the PIT's interrupts on and no exit of its own (spin_irq.c).
 */
#include <hv/abi.h>

#include "guest.h"
#include "spin_irq.h"

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
static volatile u32 fault_vector, fault_count, fault_eip;
static volatile u32 fixup_tf_off;       /* apic_fetch_fault: the fixup resumes with RFLAGS.TF clear */
static u32 failures;
static int amd;

static void step(const char *name, int ok, const char *detail)
{
    puts("mbtest: step ");
    puts(name);
    puts(ok ? ": PASS " : ": FAIL ");
    puts(detail);
    putc('\n');
    failures += !ok;
}

static volatile u32 db_count, db_eip, db_dr6, bp_hits, nmi_count;
static volatile u32 bp_escape;          /* where a #BP that repeats is sent (a re-executed INT3) */
volatile u32 df_count;                  /* counted by the #DF task (entry.S) */

void trap(struct trap_frame *f);
void trap(struct trap_frame *f)
{
    if (f->vector == 1) {               /* #DB: note it; TF off, RF on so that a breakpoint resumes */
        db_count++;
        db_eip = f->eip;
        __asm__ volatile("movl %%dr6, %0" : "=r"(db_dr6));
        __asm__ volatile("movl %0, %%dr6" : : "r"(0xffff0ff0u));
        f->eflags = (f->eflags & ~0x100u) | 0x10000u;
        return;
    }
    if (f->vector == 2) {               /* NMI */
        nmi_count++;
        return;
    }
    if (f->vector == 3 && bp_escape) {  /* a counted #BP: a second one means the INT3 ran again */
        if (++bp_hits > 1)
            f->eip = bp_escape;
        return;
    }
    fault_count++;
    fault_vector = f->vector;
    fault_eip = f->eip;
    if (mbtest_fixup) {
        f->eip = mbtest_fixup;
        mbtest_fixup = 0;
        if (fixup_tf_off)               /* resume with TF clear, as a handler that longjmps does */
            f->eflags &= ~0x100u;
        return;
    }
    puts_hex8("mbtest: unexpected exception ", f->vector);
    puts_hex8(" at EIP ", f->eip);
    puts_hex8(" error ", f->error);
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

static u64 idt[32] __attribute__((aligned(8)));

static void setup_idt(void)
{
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

static void check_memmap(const struct mb_info *mbi)
{
    u64 from_1m = 0, end_1m = 0;
    puts_dec("mbtest: mem_lower=", mbi->mem_lower);
    puts_dec(" mem_upper=", mbi->mem_upper);
    putc('\n');
    for (u32 at = mbi->mmap_addr; at < mbi->mmap_addr + mbi->mmap_length;) {
        const struct mb_mmap *e = (const struct mb_mmap *)at;
        puts_hex16("mbtest: mmap ", e->addr);
        puts_hex16(" len ", e->len);
        puts_dec(" type ", e->type);
        putc('\n');
        if (e->type == 1 && e->addr <= 0x100000 && e->addr + e->len > 0x100000) {
            from_1m = e->addr;
            end_1m = e->addr + e->len;
        }
        at += e->size + 4;
    }
    hv_region = end_1m < 0x100000000ull ? (u32)end_1m : 0;
    puts("mbtest: hypervisor region at ");
    puthex8(hv_region);
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

/*
 * A CPUID bit that mirrors a CR4 bit (ECX of ``leaf``, subleaf 0): clear while this guest's CR4 bit is
 * clear, set once it sets it, whatever the host's CR4 holds. Without the feature (``feature_bit``) the
 * CR4 bit cannot be set (#GP), so only the clear case is checked and *tried stays 0.
 */
static int cr4_mirror(u32 leaf, u32 feature_bit, u32 mirror_bit, u32 cr4_bit, int *tried)
{
    u32 a, b, c, d, cr4;
    cpuid(leaf, &a, &b, &c, &d);
    int off = !((c >> mirror_bit) & 1), on = 1;
    *tried = (c >> feature_bit) & 1;
    if (*tried) {
        __asm__ volatile("movl %%cr4, %0; orl %1, %0; movl %0, %%cr4" : "=&r"(cr4) : "r"(1u << cr4_bit));
        cpuid(leaf, &a, &b, &c, &d);
        on = (c >> mirror_bit) & 1;
        __asm__ volatile("movl %%cr4, %0; andl %1, %0; movl %0, %%cr4" : "=&r"(cr4) : "r"(~(1u << cr4_bit)));
    }
    return off && on;
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
    /* OSXSAVE[27] of leaf 1 mirrors CR4.OSXSAVE[18] (XSAVE[26]); OSPKE[4] of leaf 7 mirrors CR4.PKE[22]
     * (PKU[3]): SDM Vol. 2A CPUID, Tables 3-10 and 3-8 */
    int xsave, pku;
    int osxsave = cr4_mirror(1, 26, 27, 18, &xsave);
    int ospke = cr4_mirror(7, 3, 4, 22, &pku);
    static const char *const details[4] = {
        "hidden, OSXSAVE and OSPKE = guest CR4 (neither XSAVE nor PKU: only their clear state checked)",
        "hidden, OSXSAVE and OSPKE = guest CR4 (XSAVE: set and clear checked; no PKU)",
        "hidden, OSXSAVE and OSPKE = guest CR4 (PKU: set and clear checked; no XSAVE)",
        "hidden, OSXSAVE and OSPKE = guest CR4 (XSAVE and PKU: set and clear checked)",
    };
    step("cpuid", hv_bit && named && !vmx && !svm && osxsave && ospke,
         !hv_bit ? "no hypervisor bit" : !named ? "no hvtrace leaves" : vmx || svm ? "VMX/SVM visible"
         : !osxsave ? "OSXSAVE does not follow the guest's CR4" : !ospke ? "OSPKE does not follow the guest's CR4"
         : details[xsave | pku << 1]);
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

/* MOV to CR that may fault: the vector (13 for #GP), or ~0 if none. */
static u32 try_write_cr0(u32 v)
{
    fault_vector = ~0u;
    __asm__ volatile(ARM "movl %0, %%cr0" LAND : : "r"(v) : "memory");
    return fault_vector;
}

static u32 try_write_cr4(u32 v)
{
    fault_vector = ~0u;
    __asm__ volatile(ARM "movl %0, %%cr4" LAND : : "r"(v) : "memory");
    return fault_vector;
}

/*
 * cr_reserved: MOV CR0 with NW set and CD clear, and MOV CR4 with reserved bit 31, #GP(0) and leave the
 * register as it was (SDM Vol. 2B MOV CR, Vol. 3A 2.5; APM Vol. 2 3.1.1, 3.1.3). It stopped the run
 * under QEMU's SVM, which let the write through and then refused the VMCB.
 */
static void check_cr_reserved(void)
{
    u32 cr0, cr4, cr0_after, cr4_after;
    __asm__ volatile("movl %%cr0, %0; movl %%cr4, %1" : "=r"(cr0), "=r"(cr4));
    u32 nw = try_write_cr0((cr0 | (1u << 29)) & ~(1u << 30));
    u32 r31 = try_write_cr4(cr4 | (1u << 31));
    __asm__ volatile("movl %%cr0, %0; movl %%cr4, %1" : "=r"(cr0_after), "=r"(cr4_after));
    int ok = nw == 13 && r31 == 13 && cr0_after == cr0 && cr4_after == cr4;
    step("cr_reserved", ok, ok ? "CR0.NW without CD and CR4 bit 31 #GP, registers unchanged"
                        : nw != 13 ? "CR0.NW without CD did not #GP"
                        : r31 != 13 ? "CR4 bit 31 did not #GP" : "a refused write changed the register");
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
    step("hypercall", hypercall(amd, HV_HC_PING, 0) == HV_HC_PING_REPLY, "PING");
}

/* The hypervisor traps xAPIC stores (to emulate the guest's INIT/SIPI) and performs the others. */
static void check_apic(void)
{
    volatile u32 *tpr = (volatile u32 *)0xfee00080u;
    u32 before = hypercall(amd, HV_HC_EXIT_COUNT, HV_EXIT_STAGE2_FAULT);
    *tpr = 0x10;
    u32 back = *tpr & 0xff;
    *tpr = 0;
    u32 after = hypercall(amd, HV_HC_EXIT_COUNT, HV_EXIT_STAGE2_FAULT);
    u32 zero = *tpr & 0xff;
    step("apic", after == before + 2 && back == 0x10 && zero == 0,
         after == before + 2 ? "TPR stores emulated, reads direct" : "stores not trapped (or a read faulted)");
}

/*
 * Instruction forms beyond MOV r/m32 (SDM Vol. 2B MOV A3; OR 83 /1 ib with LOCK; REP MOVS F3 A5; XCHG
 * 87 /r), each a store the hypervisor must decode and emulate (hv/core/mmio_decode.c, mmio_emul.c).
 * ICR high only holds the destination (no IPI is sent), the TPR ends where it started.
 */
static void check_mmio_forms(void)
{
    volatile u32 *icr_hi = (volatile u32 *)0xfee00310u, *tpr = (volatile u32 *)0xfee00080u;
    u32 before = hypercall(amd, HV_HC_EXIT_COUNT, HV_EXIT_STAGE2_FAULT);
    u32 tpr0 = *tpr & 0xff;
    /* A3 10 03 E0 FE: mov [0xfee00310], eax (the encoding a public test suite uses for the ICR) */
    __asm__ volatile(".byte 0xa3\n\t.long 0xfee00310" : : "a"(0x0f000000u) : "memory");
    u32 dest = *icr_hi >> 24;
    __asm__ volatile(".byte 0xa3\n\t.long 0xfee00310" : : "a"(0u) : "memory");
    u32 dest0 = *icr_hi >> 24;
    /* F0 83 0D 80 00 E0 FE 20: lock or dword [0xfee00080], 0x20 */
    __asm__ volatile("lock orl $0x20, 0xfee00080" : : : "memory", "cc");
    u32 ored = *tpr & 0xff;
    /* F3 A5: rep movsd, one dword from this kernel's RAM (DS:ESI) to the TPR (ES:EDI) */
    static volatile u32 tpr_src = 0x30;
    u32 esi = (u32)&tpr_src, edi = 0xfee00080u, ecx = 1;
    __asm__ volatile("cld; rep movsl" : "+S"(esi), "+D"(edi), "+c"(ecx) : : "memory", "cc");
    u32 copied = *tpr & 0xff;
    int movs_ok = copied == 0x30 && ecx == 0 && esi == (u32)&tpr_src + 4 && edi == 0xfee00084u;
    /* 87 05 80 00 E0 FE: xchg [0xfee00080], eax (TPR back to what it was, EAX gets the copied value) */
    u32 old = tpr0;
    __asm__ volatile("xchgl %0, 0xfee00080" : "+a"(old) : : "memory");
    u32 restored = *tpr & 0xff;
    u32 after = hypercall(amd, HV_HC_EXIT_COUNT, HV_EXIT_STAGE2_FAULT);
    int ok = after == before + 5 && dest == 0x0f && dest0 == 0 && ored == (tpr0 | 0x20) && movs_ok &&
             (old & 0xff) == 0x30 && restored == tpr0;
    if (!ok) {
        puts("mbtest: mmio: exits ");
        puthex8(after - before);
        puts(" icr-hi ");
        puthex8(dest);
        puts(" tpr ");
        puthex8(ored);
        puts(" movs ");
        puthex8(copied);
        puthex8(ecx);
        puts(" xchg ");
        puthex8(old);
        puts(" ");
        puthex8(restored);
        putc('\n');
    }
    step("mmio", ok, ok ? "A3 moffs32 store to ICR high, LOCK OR, REP MOVSD and XCHG on the TPR emulated"
                        : "an xAPIC access form was not emulated right");
}

/* ---- AP start-up (SDM Vol. 3A 9.4.4 "MP Initialization Example", 11.6.1 ICR) ---- */
#define AP_TRAMPOLINE 0x7000u
#define ICR_LO ((volatile u32 *)0xfee00300u)
#define ICR_HI ((volatile u32 *)0xfee00310u)
#define ICR_ALL_BUT_SELF (3u << 18)
#define ICR_INIT_ASSERT (0x5u << 8 | 1u << 14 | 1u << 15)
#define ICR_STARTUP (0x6u << 8)

extern u8 ap_trampoline[], ap_trampoline_end[], ap_gdtr[], ap_gp_ip[], ap_gp_rdmsr[];
static volatile u32 aps_alive, aps_virtualized;

static volatile u32 ap_ldr, ap_dfr;      /* non-zero: each AP sets its xAPIC LDR / DFR (check_logical_ipi) */

void ap_main(void);
void ap_main(void)
{
    if (ap_ldr) {
        *(volatile u32 *)0xfee000e0u = ap_dfr;
        *(volatile u32 *)0xfee000d0u = ap_ldr;
    }
    u32 a, b, c, d;
    cpuid(1, &a, &b, &c, &d);
    int ok = (c >> 31) & 1 && hypercall(amd, HV_HC_PING, 0) == HV_HC_PING_REPLY;
    __atomic_fetch_add(&aps_alive, 1, __ATOMIC_SEQ_CST);
    if (ok)
        __atomic_fetch_add(&aps_virtualized, 1, __ATOMIC_SEQ_CST);
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
    /* Each AP's RDMSR of a VMX MSR in real mode: #GP through the IVT with no error code on the stack. */
    u32 gp_ip = *(volatile u16 *)(AP_TRAMPOLINE + (u32)(ap_gp_ip - ap_trampoline));
    u32 want_ip = (u32)(ap_gp_rdmsr - ap_trampoline);
    step("ap_real_mode_gp", gp_ip == want_ip,
         gp_ip == want_ip ? "#GP in real mode delivered without an error code"
                          : "#GP in real mode pushed an error code (or none came)");
    /* INIT to the running (halted) APs resets them to wait-for-SIPI; a SIPI starts them again. */
    ipi_all_but_self(ICR_INIT_ASSERT, x2apic);
    delay(100000);
    for (int i = 0; i < 2; i++) {
        ipi_all_but_self(ICR_STARTUP | (AP_TRAMPOLINE >> 12), x2apic);
        delay(10000);
    }
    for (u32 spins = 0; aps_alive < 2 * (cpus - 1) && spins < 200000000u; spins++)
        __asm__ volatile("pause");
    step("ap_init_again", aps_alive == 2 * (cpus - 1) && aps_virtualized == 2 * (cpus - 1),
         aps_alive == 2 * (cpus - 1) ? "INIT-SIPI to running APs restarts each once, virtualized"
                                     : "an INIT to a running AP did not restart it");
    /* INIT and SIPI back to back, no wait between: the IPIs of one sender arrive in order, so each AP
     * still takes the INIT (drops its context) and then starts at the SIPI vector. */
    ipi_all_but_self(ICR_INIT_ASSERT, x2apic);
    ipi_all_but_self(ICR_STARTUP | (AP_TRAMPOLINE >> 12), x2apic);
    for (u32 spins = 0; aps_alive < 3 * (cpus - 1) && spins < 200000000u; spins++)
        __asm__ volatile("pause");
    step("ap_init_sipi_now", aps_alive == 3 * (cpus - 1) && aps_virtualized == 3 * (cpus - 1),
         aps_alive == 3 * (cpus - 1) ? "INIT then SIPI at once restarts each running AP once, virtualized"
                                     : "an INIT followed at once by a SIPI did not restart the AP");
}


/*
 * ---- Architectural behaviour the hypervisor must not change (issue: transparency departures) ----
 * Each check below failed on the first release and passes on bare metal.
 */

static inline u32 read_dr6(void)
{
    u32 v;
    __asm__ volatile("movl %%dr6, %0" : "=r"(v));
    return v;
}

/*
 * Single-step over instructions the hypervisor emulates (CPUID, RDMSR of EFER, MOV to CR4): the #DB
 * trap comes after the instruction, with DR6.BS (SDM Vol. 3B 18.3.1.4). POPF sets TF; the trap follows
 * the next instruction.
 */
static int tf_over(int which)
{
    u32 after, a = 0, c = 0xc0000080, d, cr4;
    db_count = 0;
    __asm__ volatile("movl %%cr4, %0" : "=r"(cr4));
    __asm__ volatile("movl %%dr6, %0; andl $~0x4000, %0; movl %0, %%dr6" : "=r"(d));
    if (which == 0)
        __asm__ volatile("movl $1f, %0\n\tpushfl\n\torl $0x100, (%%esp)\n\tpopfl\n\tcpuid\n1:\n\tnop"
                         : "=&S"(after), "+a"(a), "+c"(c) : : "ebx", "edx", "memory", "cc");
    else if (which == 1)
        __asm__ volatile("movl $1f, %0\n\tpushfl\n\torl $0x100, (%%esp)\n\tpopfl\n\trdmsr\n1:\n\tnop"
                         : "=&S"(after), "=a"(a), "=d"(d) : "c"(c) : "memory", "cc");
    else
        __asm__ volatile("movl $1f, %0\n\tpushfl\n\torl $0x100, (%%esp)\n\tpopfl\n\tmovl %1, %%cr4\n1:\n\tnop"
                         : "=&S"(after) : "r"(cr4) : "memory", "cc");
    return db_count == 1 && db_eip == after && (db_dr6 & 0x4000);
}

static void check_tf_emulated(void)
{
    int cpuid_ok = tf_over(0), rdmsr_ok = tf_over(1), cr4_ok = tf_over(2);
    step("tf_emulated", cpuid_ok && rdmsr_ok && cr4_ok,
         !cpuid_ok ? "no single-step #DB after CPUID" : !rdmsr_ok ? "no single-step #DB after RDMSR"
         : !cr4_ok ? "no single-step #DB after MOV CR4" : "#DB with DR6.BS after CPUID, RDMSR, MOV CR4");
}

/* A DR7 execution breakpoint armed before an exit still fires after it (DR7 survives VM exits). */
static void check_dr7(void)
{
    u32 target, a = 0, c = 0, dr7 = 1u;          /* L0, R/W0 = 00 execute, LEN0 = 00 (SDM Vol. 3B 18.2.4) */
    __asm__ volatile("movl $1f, %0\n\tjmp 2f\n1:\tnop\n\tret\n2:" : "=r"(target));
    __asm__ volatile("movl %0, %%dr0" : : "r"(target));
    __asm__ volatile("movl %0, %%dr7" : : "r"(dr7));
    db_count = 0;
    __asm__ volatile("cpuid" : "+a"(a), "+c"(c) : : "ebx", "edx");      /* an exit */
    __asm__ volatile("call *%0" : : "r"(target) : "memory");
    __asm__ volatile("movl %0, %%dr7" : : "r"(0u));
    step("dr7", db_count == 1 && db_eip == target && (db_dr6 & 1), db_count != 1
         ? "the breakpoint in DR0 did not fire after an exit" : "DR0 execution breakpoint fires after an exit");
}

/*
 * An xAPIC store by an instruction the hypervisor's MMIO decoder does not know, MOVNTI m32, r32
 * (0F C3 /r, SDM Vol. 2B): executed against a copy of the page, single-stepped, and replayed.
 */
static void check_apic_fallback(void)
{
    volatile u32 *tpr = (volatile u32 *)0xfee00080u;
    __asm__ volatile("movnti %0, (%1)" : : "r"(0x20u), "r"(tpr) : "memory");
    u32 back = *tpr & 0xff;
    *tpr = 0;
    step("apic_fallback", back == 0x20 && (*tpr & 0xff) == 0,
         back == 0x20 ? "MOVNTI to the TPR performed" : "MOVNTI to the TPR lost");
}

/*
 * The x2APIC ICR MSR in xAPIC mode: #GP, as every x2APIC MSR outside x2APIC mode (SDM Vol. 3A
 * 11.12.1). The hypervisor intercepts it (INIT/SIPI emulation) and must not take it as an IPI.
 */
static void check_x2apic_msr_in_xapic_mode(void)
{
    fault_vector = ~0u;
    __asm__ volatile(ARM "wrmsr" LAND : : "c"(0x830), "a"(0x4000u | (5u << 8)), "d"(0xffu) : "memory");
    step("x2apic_msr_xapic_mode", fault_vector == 13,
         fault_vector == 13 ? "WRMSR to the x2APIC ICR in xAPIC mode raises #GP" : "no #GP");
}

/* GETSEC without SMX (CPUID.1:ECX.SMX is 0 for the guest) is #UD (SDM Vol. 2D GETSEC). */
static void check_getsec(void)
{
    fault_vector = ~0u;
    __asm__ volatile(ARM ".byte 0x0f, 0x37" LAND : : "a"(0) : "memory");
    step("getsec", fault_vector == 6, fault_vector == 6 ? "GETSEC raises #UD" : "GETSEC did not raise #UD");
}

/* CPUID and RDMSR with legal prefixes (operand size, segment override, REP) have the same result. */
static void check_prefixes(void)
{
    u32 a0, b0, c0, d0, a1 = 0, b1, c1 = 0, d1, a2 = 0, b2, c2 = 0, d2, lo0, hi0, lo1, hi1;
    cpuid(0, &a0, &b0, &c0, &d0);
    __asm__ volatile(".byte 0x66, 0x0f, 0xa2" : "+a"(a1), "=b"(b1), "+c"(c1), "=d"(d1));
    __asm__ volatile(".byte 0x2e, 0xf3, 0x0f, 0xa2" : "+a"(a2), "=b"(b2), "+c"(c2), "=d"(d2));
    __asm__ volatile("rdmsr" : "=a"(lo0), "=d"(hi0) : "c"(0xc0000080));
    __asm__ volatile(".byte 0x3e, 0x0f, 0x32" : "=a"(lo1), "=d"(hi1) : "c"(0xc0000080));
    int ok = a1 == a0 && b1 == b0 && d1 == d0 && a2 == a0 && b2 == b0 && d2 == d0 && lo1 == lo0 && hi1 == hi0;
    step("prefixes", ok, ok ? "66/2E/F3 CPUID and 3E RDMSR execute as without prefixes" : "prefixed result differs");
}

/*
 * An NMI IPI to its own APIC ID through the xAPIC ICR is delivered once to this kernel's NMI handler
 * (no shorthand: "self" allows only fixed delivery, SDM Vol. 3A 11.6.1).
 */
static void check_nmi_self(void)
{
    nmi_count = 0;
    if (rdmsr(0x1b) & (1u << 10)) {     /* x2APIC mode: the ICR MSR, destination its x2APIC ID (MSR 0x802) */
        wrmsr(0x830, (u64)(u32)rdmsr(0x802) << 32 | 4u << 8);
    } else {
        *(volatile u32 *)0xfee00310u = *(volatile u32 *)0xfee00020u & 0xff000000u;     /* destination: own ID */
        *(volatile u32 *)0xfee00300u = 4u << 8;                                        /* delivery mode NMI */
    }
    for (u32 spins = 0; !nmi_count && spins < 10000000u; spins++)
        __asm__ volatile("pause");
    step("nmi_self", nmi_count == 1, nmi_count == 1 ? "self NMI delivered once" : "self NMI not delivered once");
}

/*
 * A #BP with the stack in the VGA text buffer (0xb8000, a memory-map hole the hypervisor maps on first
 * touch): delivering it exits (stage-2 fault while pushing the frame) and must then complete once,
 * with the return address after the INT3 (a re-injected software exception must not push its own RIP).
 */
static void check_int3_on_hole_stack(void)
{
    u32 saved;
    bp_hits = 0;
    __asm__ volatile("movl $2f, bp_escape\n\t"
                     "movl %%esp, %0\n\t"
                     "movl $0xbc000, %%esp\n\t"
                     "int3\n\t"
                     "2:\n\t"
                     "movl %0, %%esp\n\t"
                     "movl $0, bp_escape"
                     : "=&r"(saved) : : "memory");
    /* The single-step #DB trap delivered onto another first-touched page must not be lost either. */
    db_count = 0;
    __asm__ volatile("movl %%esp, %0\n\t"
                     "movl $0xbe000, %%esp\n\t"
                     "pushfl\n\torl $0x100, (%%esp)\n\tpopfl\n\t"
                     "nop\n\t"
                     "nop\n\t"
                     "movl %0, %%esp"
                     : "=&r"(saved) : : "memory", "cc");
    step("db_hole_stack", db_count == 1, db_count == 1 ? "single-step #DB delivered onto a first-touched page"
                                                       : "single-step #DB lost during delivery");
    step("int3_hole_stack", bp_hits == 1, bp_hits == 1 ? "#BP delivered once onto a first-touched page"
                                                       : "#BP delivered more than once (or never)");
}

/*
 * A double fault through a task gate (32-bit, SDM Vol. 3A 7.14 and 8.3): #GP with a not-present #GP
 * gate raises #NP during delivery, contributory twice is #DF, and IDT[8] is a task gate to df_tss. The
 * #DF task counts, sends the old task past the faulting instruction and IRETs back (NT: a task switch).
 */
extern u8 df_task_entry[];
struct tss32 {
    u32 link, esp0, ss0, esp1, ss1, esp2, ss2, cr3, eip, eflags, eax, ecx, edx, ebx, esp, ebp, esi, edi;
    u32 es, cs, ss, ds, fs, gs, ldt, iomap;
} __attribute__((packed));
struct tss32 main_tss __attribute__((aligned(128)));
struct tss32 df_tss __attribute__((aligned(128)));
u32 df_resume_eip;
static u8 df_stack[4096] __attribute__((aligned(16)));
static u64 gdt2[8] __attribute__((aligned(8)));

static u64 tss_desc(u32 base)
{
    /* 32-bit available TSS (type 9), present, limit 0x67 (SDM Vol. 3A 8.2.2, Figure 8-3) */
    return 0x67 | (u64)(base & 0xffffff) << 16 | (u64)0x89 << 40 | (u64)(base >> 24) << 56;
}

static void check_double_fault_task(u64 *idt)
{
    struct {
        u16 limit;
        u32 base;
    } __attribute__((packed)) gdtr;
    __asm__ volatile("sgdt %0" : "=m"(gdtr));
    const u64 *old = (const u64 *)gdtr.base;
    for (u32 i = 0; i < 4; i++)
        gdt2[i] = old[i];
    gdt2[4] = tss_desc((u32)&main_tss);
    gdt2[5] = tss_desc((u32)&df_tss);
    gdtr.limit = 6 * 8 - 1;
    gdtr.base = (u32)gdt2;
    __asm__ volatile("lgdt %0; ltr %w1" : : "m"(gdtr), "r"(4 * 8));
    df_tss = (struct tss32){ .eip = (u32)df_task_entry, .eflags = 2, .esp = (u32)(df_stack + sizeof(df_stack)),
                             .es = 0x18, .cs = 0x10, .ss = 0x18, .ds = 0x18, .fs = 0x18, .gs = 0x18 };
    __asm__ volatile("movl %%cr3, %0" : "=r"(df_tss.cr3));
    u64 gp_gate = idt[13], df_gate = idt[8];
    idt[8] = (u64)(5 * 8) << 16 | (u64)0x8500 << 32;    /* task gate, present, DPL 0 (Figure 7-2) */
    idt[13] &= ~((u64)1 << 47);                          /* #GP gate not present: #NP during delivery */
    df_count = 0;
    __asm__ volatile("movl $1f, df_resume_eip\n\t"
                     "movw $0x33, %%ax\n\t"              /* a selector past the GDT limit: #GP */
                     "movw %%ax, %%fs\n\t"
                     "1:"
                     : : : "eax", "memory");
    idt[13] = gp_gate;
    idt[8] = df_gate;
    int ok = df_count == 1;
    step("double_fault_task", ok, ok ? "#DF through a task gate and back by IRET" : "no #DF task switch");
}

/*
 * "debug_exit=N": end the run through the isa-debug-exit port (HV_DEBUG_EXIT_PORT, the convention of
 * QEMU test kernels) with N instead of the GUEST_EXIT hypercall: a byte write for N < 256, else a
 * 4-byte write; with "outs" a REP OUTSB of one byte from memory (string I/O to an intercepted port).
 * "fake_status": first print a final status line of our own, which the host must not
 * take for the hypervisor's; without "debug_exit=" then spin forever. Returns only without either.
 */
static void debug_exit_option(const char *cmdline)
{
    const char *key = "debug_exit=", *at = 0;
    for (const char *p = cmdline; *p && !at; p++) {
        const char *a = p, *b = key;
        while (*b && *a == *b)
            a++, b++;
        if (!*b && (p == cmdline || p[-1] == ' '))
            at = a;
    }
    int fake = has_word(cmdline, "fake_status");
    if (fake)
        puts(HV_STATUS_PREFIX " code=0 result=pass reason=guest_pass\n");
    if (at) {
        u32 n = 0;
        for (; *at >= '0' && *at <= '9'; at++)
            n = n * 10 + (u32)(*at - '0');
        puts("mbtest: debug exit ");
        puthex8(n);
        puts("\n");
        static volatile u8 code_byte;
        code_byte = (u8)n;
        if (n < 256 && has_word(cmdline, "outs"))
            __asm__ volatile("cld; rep outsb"
                             : : "S"(&code_byte), "c"(1u), "d"((u16)HV_DEBUG_EXIT_PORT) : "memory");
        else if (n < 256)
            outb(HV_DEBUG_EXIT_PORT, (u8)n);
        else
            __asm__ volatile("outl %0, %1" : : "a"(n), "Nd"((u16)HV_DEBUG_EXIT_PORT));
    }
    while (at || fake)
        __asm__ volatile("cli; hlt");
}

/* ==================================================================================================
 * MSR policy steps (issue 13 items 2 and 8; hv/core/msr_policy.c). One block, to ease merging.
 * ================================================================================================== */

/* WRMSR / RDMSR that may fault: the vector (13 for #GP), or ~0 if none. */
static u32 try_wrmsr(u32 msr, u64 v)
{
    fault_vector = ~0u;
    __asm__ volatile(ARM "wrmsr" LAND : : "c"(msr), "a"((u32)v), "d"((u32)(v >> 32)) : "memory");
    return fault_vector;
}

static u32 try_rdmsr(u32 msr, u64 *v)
{
    u32 lo = 0, hi = 0;
    fault_vector = ~0u;
    __asm__ volatile(ARM "rdmsr" LAND : "+a"(lo), "+d"(hi) : "c"(msr) : "memory");
    *v = (u64)hi << 32 | lo;
    return fault_vector;
}

static inline u64 rdtsc64(void)
{
    u32 lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return (u64)hi << 32 | lo;
}

/*
 * Intel PT writes its trace to physical addresses: a guest that owned RTIT_OUTPUT_BASE and RTIT_CTL
 * could aim it at hypervisor memory. PT is hidden (CPUID.(7,0):EBX[25] = 0) and its MSRs are #GP.
 */
static void check_msr_pt(void)
{
    u32 a, b, c, d;
    cpuid(0, &a, &b, &c, &d);
    u32 pt = 0;
    if (a >= 7) {
        __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(7), "c"(0));
        pt = b & (1u << 25);
    }
    u64 v;
    u32 base = try_wrmsr(0x560, hv_region);            /* RTIT_OUTPUT_BASE: the hypervisor's region */
    u32 mask = try_wrmsr(0x561, 0x7full);              /* RTIT_OUTPUT_MASK_PTRS */
    u32 ctl = try_wrmsr(0x570, 1ull | (1ull << 2) | (1ull << 3) | (1ull << 8));   /* TraceEn OS User ToPA=0 */
    u32 rd = try_rdmsr(0x570, &v);
    int ok = !pt && base == 13 && mask == 13 && ctl == 13 && rd == 13;
    step("msr_pt", ok, pt ? "CPUID offers Intel PT" : !ok ? "an RTIT_* access did not #GP"
         : "RTIT_OUTPUT_BASE/MASK_PTRS/CTL writes and a read raise #GP; CPUID hides PT");
}

/*
 * MTRRs are the guest's own (SDM Vol. 3A 13.11): a reserved memory type, reserved bits and bits above
 * MAXPHYADDR are #GP as on hardware; a legal value in an unused variable range reads back; MTRRcap is
 * read-only; DEF_TYPE keeps its value.
 */
/*
 * mtrr_types: the first unused variable range makes [16 MiB, 18 MiB) UC, the memory there still reads
 * back what was stored, and the range is freed again (SDM Vol. 3A 13.11.3: PHYSBASE, then PHYSMASK
 * with V). The hypervisor retypes its stage-2 map each time (its console says how many leaves; the
 * host test checks those lines). Needs MTRRs enabled (DEF_TYPE.E) and a free variable range.
 */
static void check_mtrr_types(u32 n, u32 vcnt, u32 phys)
{
    if (n >= vcnt || !(rdmsr(0x2ff) & (1u << 11))) {
        step("mtrr_types", 1, "MTRRs disabled or no free variable range: skipped");
        return;
    }
    volatile u32 *mem = (volatile u32 *)0x1000000;
    u32 saved = *mem;
    wrmsr(0x200 + 2 * n, 0x1000000ull);                                     /* type 0: UC */
    wrmsr(0x201 + 2 * n, (~0x1fffffull & ((1ull << phys) - 1)) | (1u << 11)); /* 2 MiB, valid */
    *mem = 0x5a5aa5a5;
    int ok = *mem == 0x5a5aa5a5;
    *mem = saved;
    wrmsr(0x201 + 2 * n, 0);
    wrmsr(0x200 + 2 * n, 0);
    step("mtrr_types", ok, ok ? "16 MiB made UC by a variable range and freed again; memory intact"
                              : "memory at 16 MiB changed under a UC variable range");
}

static void check_msr_mtrr(void)
{
    u32 a, b, c, d;
    cpuid(1, &a, &b, &c, &d);
    if (!(d & (1u << 12))) {
        step("msr_mtrr", 1, "no MTRRs (CPUID.1:EDX.MTRR = 0): skipped");
        return;
    }
    u32 phys = 36;
    cpuid(0x80000000, &a, &b, &c, &d);
    if (a >= 0x80000008) {
        cpuid(0x80000008, &a, &b, &c, &d);
        phys = a & 0xff;
    }
    u64 cap = rdmsr(0xfe), def = rdmsr(0x2ff), v;
    u32 vcnt = cap & 0xff, n = vcnt;
    for (u32 i = 0; i < vcnt && n == vcnt; i++)
        if (!(rdmsr(0x201 + 2 * i) & (1u << 11)))
            n = i;                                      /* the first unused variable range */
    const char *why = 0;
    if (try_wrmsr(0xfe, cap) != 13)
        why = "a write of MTRRcap did not #GP";
    else if (try_wrmsr(0x2ff, (def & ~0xffull) | 2) != 13)
        why = "DEF_TYPE with memory type 2 (reserved) did not #GP";
    else if (try_wrmsr(0x2ff, def | (1ull << 9)) != 13)
        why = "DEF_TYPE with reserved bit 9 did not #GP";
    else if (n < vcnt && try_wrmsr(0x200 + 2 * n, 0x100000ull | 3) != 13)
        why = "PHYSBASE with memory type 3 (reserved) did not #GP";
    else if (n < vcnt && phys < 52 && try_wrmsr(0x200 + 2 * n, (1ull << phys) | 6) != 13)
        why = "PHYSBASE with a bit above MAXPHYADDR did not #GP";
    else if (n < vcnt && try_wrmsr(0x201 + 2 * n, 0x800ull | 1) != 13)
        why = "PHYSMASK with reserved bit 0 did not #GP";
    else if (try_wrmsr(0x200 + 2 * vcnt, 6) != 13 || try_rdmsr(0x200 + 2 * vcnt, &v) != 13)
        why = "the variable range past MTRRcap.VCNT exists";
    else if (n < vcnt && (try_wrmsr(0x200 + 2 * n, 0x100000ull | 1) != ~0u || rdmsr(0x200 + 2 * n) != (0x100000ull | 1)))
        why = "a legal PHYSBASE (WC at 1 MiB, range not valid) did not read back";
    else if (rdmsr(0x2ff) != def || rdmsr(0xfe) != cap)
        why = "DEF_TYPE or MTRRcap changed";
    if (n < vcnt)
        wrmsr(0x200 + 2 * n, 0);
    step("msr_mtrr", !why, why ? why : "reserved types and bits #GP, a legal value reads back, MTRRcap read-only");
    check_mtrr_types(n, vcnt, phys);
}

/*
 * IA32_TSC writes move the guest's TSC only (TSC offset): RDTSC follows the written value.
 * The host's TSC is checked from the host: the trace records' timestamps keep increasing.
 */
static void check_msr_tsc(void)
{
    u64 before = rdtsc64();
    u32 w = try_wrmsr(0x10, 0x1000);
    u64 t = rdtsc64();
    /* RDMSR of the TSC is not checked: QEMU's TCG answers it with 0, bare or not. */
    int ok = w == ~0u && t >= 0x1000 && t < before;
    wrmsr(0x10, before);                                /* about where it was */
    step("msr_tsc", ok, w != ~0u ? "WRMSR IA32_TSC faulted" : !ok ? "the TSC did not follow the write"
         : "WRMSR IA32_TSC moves RDTSC");
}

/*
 * AMD's memory-map MSRs are the host's (SYSCFG, TOP_MEM, TOP_MEM2, IORRs, HWCR): readable, writes #GP.
 * On Intel the step checks an MSR that no table entry lists is #GP on write (BIOS_UPDT_TRIG).
 */
static void check_msr_host_owned(void)
{
    u64 v;
    if (!amd) {
        u32 w = try_wrmsr(0x79, 0);
        step("msr_host_owned", w == 13, w == 13 ? "BIOS_UPDT_TRIG write raises #GP" : "BIOS_UPDT_TRIG write did not #GP");
        return;
    }
    u32 rd = try_rdmsr(0xc0010010, &v);
    u32 sys = rd == ~0u ? try_wrmsr(0xc0010010, v) : 0;
    u32 top = try_wrmsr(0xc001001a, 0x1000000);
    u32 top2 = try_wrmsr(0xc001001d, 0x100000000ull);
    u32 iorr = try_wrmsr(0xc0010016, 0x1000 | 0x18);
    u32 hwcr = try_wrmsr(0xc0010015, 0);
    int ok = rd == ~0u && sys == 13 && top == 13 && top2 == 13 && iorr == 13 && hwcr == 13;
    step("msr_host_owned", ok, rd != ~0u ? "RDMSR SYSCFG faulted" : !ok ? "a SYSCFG/TOP_MEM/TOP_MEM2/IORR/HWCR write did not #GP"
         : "SYSCFG read; SYSCFG, TOP_MEM, TOP_MEM2, IORR, HWCR writes raise #GP");
}

/*
 * EFER (APM Vol. 2 3.1.7, SDM Vol. 3A 2.2.1): reserved bit 1 is #GP; AutoIBRS (bit 21) is #GP unless
 * CPUID 8000_0021:EAX[8] names it; FFXSR (bit 14, AMD) where CPUID 8000_0001:EDX[25] names it is
 * accepted and reads back. EFER ends as it was.
 */
static void check_efer_bits(void)
{
    u64 efer = rdmsr(0xc0000080), back = efer | (1ull << 14);
    u32 a, b, c, d, max, auto_ibrs = 0, ffxsr = 0;
    cpuid(0x80000000, &max, &b, &c, &d);
    if (max >= 0x80000021) {
        cpuid(0x80000021, &a, &b, &c, &d);
        auto_ibrs = a & (1u << 8);
    }
    if (amd && max >= 0x80000001) {
        cpuid(0x80000001, &a, &b, &c, &d);
        ffxsr = d & (1u << 25);
    }
    u32 rsv = try_wrmsr(0xc0000080, efer | 2);
    u32 ibrs = auto_ibrs ? 13 : try_wrmsr(0xc0000080, efer | (1ull << 21));
    u32 set = ffxsr ? try_wrmsr(0xc0000080, efer | (1ull << 14)) : ~0u;
    if (ffxsr && set == ~0u)
        back = rdmsr(0xc0000080);
    wrmsr(0xc0000080, efer);
    int ok = rsv == 13 && ibrs == 13 && set == ~0u && back == (efer | (1ull << 14)) && rdmsr(0xc0000080) == efer;
    step("efer_bits", ok, rsv != 13 ? "EFER reserved bit 1 did not #GP" : ibrs != 13 ? "EFER.AutoIBRS without CPUID did not #GP"
         : set != ~0u ? "EFER.FFXSR (named by CPUID) raised #GP" : !ok ? "EFER did not read back"
         : ffxsr ? "reserved bit 1 and AutoIBRS (not in CPUID) #GP; FFXSR accepted and reads back"
         : "reserved bit 1 and AutoIBRS (not in CPUID) #GP");
}

static void check_msr_policy(void)
{
    check_msr_pt();
    check_msr_mtrr();
    check_msr_tsc();
    check_msr_host_owned();
    check_efer_bits();
}
/* ===================================== end of the MSR policy steps ===================================== */

/* ==== issue 13 robustness steps (items 1, 5, 6): a block of its own ==================================
 *   apic_fetch   a CALL into the xAPIC page (the TPR set to C3h, RET) executes and returns; the page
 *                becomes executable, never writable: the next TPR store is still trapped (one more
 *                stage-2 fault exit) and emulated
 *   holes_many   under PAE paging, reads and writes of hundreds of distinct 1 GiB regions above RAM up
 *                to MAXPHYADDR (more than the hypervisor's budget of hole tables where the stage-2 map
 *                has no 1 GiB pages): all complete, none faults; one past MAXPHYADDR is the guest's own
 *                #PF (reserved bit) or, where the CPU does not check, completes
 *   high_walk    (RAM above 4 GiB only, else SKIP) the page directory for 3-4 GiB moved above 4 GiB: a
 *                TPR store through it is decoded and emulated (the hypervisor walks that directory)
 *   apic_policy  a store at the reserved xAPIC offset 0 is dropped; INIT delivery on LINT0 and vector 5
 *                on the error LVT read back masked; a misaligned TPR store is dropped (apic_policy.c)
 *   apic_efer_lme  the same stores after EFER.LME was set and cleared with paging off (SVM keeps LME
 *                out of the VMCB then: under QEMU 7.2 the exit from that state broke the host's CR0)
 *   apic_global_disable  APIC_BASE.EN cleared and set: reads back, the APIC back in its reset state
 *                (SVR FFh, LVTs masked), a self NMI delivered (the real APIC stays on: apic_emul.c)
 *   apic_fetch_end  code at the last xAPIC slot: #UD at its byte 4 (SDM 11.4.1); code in the page
 *                after the xAPIC page (nothing there): #UD at its first byte
 *   apic_fetch_store  code in the xAPIC page storing into it (ADD [EAX], AL at byte 1 of the TPR slot)
 *                completes; #UD at byte 5. JMP $ in the timer's initial count: #UD there (steps without
 *                progress are bounded)
 *   apic_fetch_fault  BOUND in the TPR raises #BR, and the copy is not executable after it (#UD at
 *                byte 5 of the slot); POP SS and HLT in the TPR are #UD
 *   logical_ipi  (cpus=N only) INIT-SIPI in logical destination mode: xAPIC flat and cluster model
 *                (each AP sets its LDR / DFR), or x2APIC logical IDs; a destination naming no CPU
 *                restarts none, one naming the AP restarts it once
 */
#define PG_P   0x1ull
#define PG_W   0x2ull
#define PG_PWT 0x8ull
#define PG_PCD 0x10ull
#define PG_PS  0x80ull
#define GIB    (1ull << 30)
#define MIB2   (1ull << 21)
#define WINDOW 0xe0000000u                      /* linear 2 MiB window: PD for 3-4 GiB, entry 256 */

static u64 pae_pdpt[4] __attribute__((aligned(32)));
static u64 pae_pd[4][512] __attribute__((aligned(4096)));

static void set_cr3(u32 v) { __asm__ volatile("movl %0, %%cr3" : : "r"(v) : "memory"); }

/* PAE paging (SDM Vol. 3A 4.4), identity map of 4 GiB with 2 MiB pages, 3-4 GiB uncached. */
static void pae_on(void)
{
    for (u32 i = 0; i < 4; i++) {
        for (u32 j = 0; j < 512; j++)
            pae_pd[i][j] = ((u64)(i * 512 + j) << 21) | PG_P | PG_W | PG_PS | (i == 3 ? PG_PCD | PG_PWT : 0);
        pae_pdpt[i] = (u32)pae_pd[i] | PG_P;    /* PDPTE bits 2:1 are reserved (4.4.1) */
    }
    u32 cr;
    __asm__ volatile("movl %%cr4, %0" : "=r"(cr));
    __asm__ volatile("movl %0, %%cr4" : : "r"(cr | 0x20u));
    set_cr3((u32)pae_pdpt);
    __asm__ volatile("movl %%cr0, %0" : "=r"(cr));
    __asm__ volatile("movl %0, %%cr0" : : "r"(cr | 0x80000000u) : "memory");
}

static void pae_off(void)
{
    u32 cr;
    __asm__ volatile("movl %%cr0, %0" : "=r"(cr));
    __asm__ volatile("movl %0, %%cr0" : : "r"(cr & ~0x80000000u) : "memory");
    __asm__ volatile("movl %%cr4, %0" : "=r"(cr));
    __asm__ volatile("movl %0, %%cr4" : : "r"(cr & ~0x20u));
}

/* Point the window at the 2 MiB block holding 'phys'; its address through the window. */
static volatile u32 *window_at(u64 phys, u64 attrs)
{
    pae_pd[3][256] = (phys & ~(MIB2 - 1)) | PG_P | PG_W | PG_PS | attrs;
    __asm__ volatile("invlpg (%0)" : : "r"(WINDOW) : "memory");
    return (volatile u32 *)(WINDOW + (u32)(phys & (MIB2 - 1)));
}

static u32 phys_bits(void)
{
    u32 a, b, c, d;
    cpuid(0x80000000, &a, &b, &c, &d);
    if (a < 0x80000008)
        return 36;
    cpuid(0x80000008, &a, &b, &c, &d);
    return a & 0xff;
}

static u64 ram_top(const struct mb_info *mbi)
{
    u64 top = 0;
    for (u32 at = mbi->mmap_addr; at < mbi->mmap_addr + mbi->mmap_length;) {
        const struct mb_mmap *e = (const struct mb_mmap *)at;
        if (e->type != 2 && e->addr + e->len > top)    /* RAM and ACPI, not reserved windows above it */
            top = e->addr + e->len;
        at += e->size + 4;
    }
    return top;
}

volatile u32 mbtest_fetch_returned;             /* set by the asm after the CALL returned */

static void check_apic_fetch(void)
{
    volatile u32 *tpr = (volatile u32 *)0xfee00080u;
    u32 tpr0 = *tpr & 0xff;
    *tpr = 0xc3;                                /* the TPR's low byte is RET (C3), the rest reads 0 */
    u32 before = hypercall(amd, HV_HC_EXIT_COUNT, HV_EXIT_STAGE2_FAULT);
    u32 saved;
    mbtest_fetch_returned = 0;
    fault_vector = ~0u;
    __asm__ volatile("movl %%esp, %0\n\t" ARM "call *%1\n\tmovl $1, mbtest_fetch_returned" LAND "\n\tmovl %0, %%esp"
                     : "=&r"(saved) : "r"(0xfee00080u) : "memory");
    u32 mid = hypercall(amd, HV_HC_EXIT_COUNT, HV_EXIT_STAGE2_FAULT);
    *tpr = tpr0;                                /* must still be trapped: the page is not writable */
    u32 after = hypercall(amd, HV_HC_EXIT_COUNT, HV_EXIT_STAGE2_FAULT);
    u32 returned = mbtest_fetch_returned;
    int ok = returned && fault_vector == ~0u && after == mid + 1 && (*tpr & 0xff) == tpr0;
    if (!ok) {
        puts("mbtest: apic_fetch: returned ");
        puthex8(returned);
        puts(" fault ");
        puthex8(fault_vector);
        puts(" exits ");
        puthex8(mid - before);
        puts(" ");
        puthex8(after - mid);
        putc('\n');
    }
    step("apic_fetch", ok, ok ? "code in the xAPIC page ran; the TPR store after it was still trapped"
                              : "the fetch failed, or stores to the xAPIC page are no longer trapped");
}

/*
 * The xAPIC write policy (hv/core/guest/apic_policy.c, issue 13): stores that must never reach the real APIC.
 * A store at the reserved offset 0 is dropped (it ended QEMU); LINT0 written with INIT delivery (SDM
 * Vol. 3A 11.5.1) and the error LVT with the illegal vector 5 unmasked (11.5.3) read back masked and
 * Fixed; a misaligned store into the TPR is dropped. Both LVTs are put back afterwards.
 */
/* The stores below, put back afterwards: does each read back policed? (On failure the values are printed.) */
static int apic_stores_policed(const char *step_name)
{
    volatile u32 *apic = (volatile u32 *)0xfee00000u;
    u32 lint0 = apic[0x350 / 4], lvterr = apic[0x370 / 4], tpr0 = apic[0x80 / 4] & 0xff;
    apic[0] = 0x12345678u;
    apic[0x350 / 4] = 0x00000500u;              /* LINT0: INIT, unmasked */
    u32 lint0_back = apic[0x350 / 4];
    apic[0x370 / 4] = 0x00000005u;              /* error: vector 5, unmasked */
    u32 err_back = apic[0x370 / 4];
    *(volatile u32 *)0xfee00081u = 0x40u;       /* misaligned: bytes 1-4 of the TPR slot */
    u32 tpr = apic[0x80 / 4] & 0xff;
    apic[0x350 / 4] = lint0;
    apic[0x370 / 4] = lvterr;
    int ok = (lint0_back & 0x10700u) == 0x10000u && (err_back & 0x100ffu) == 0x10005u && tpr == tpr0;
    if (!ok) {
        puts("mbtest: ");
        puts(step_name);
        puts(": lint0 ");
        puthex(lint0_back);
        puts(" lvterr ");
        puthex(err_back);
        puts(" tpr ");
        puthex(tpr);
        putc('\n');
    }
    return ok;
}

static void check_apic_policy(void)
{
    int ok = apic_stores_policed("apic_policy");
    step("apic_policy", ok, ok ? "store at offset 0 dropped; INIT on LINT0 and vector 5 on the error LVT written masked"
                               : "an xAPIC store reached the APIC as the guest wrote it");
}

/*
 * IA32_APIC_BASE.EN cleared and set again (SDM Vol. 3A 11.4.3): it reads back as written each time,
 * the APIC comes back software-disabled (SVR FFh, its reset value) with every LVT entry masked, and it
 * works: a self NMI IPI is delivered once. Under QEMU 7.2 a real APIC once disabled never comes back
 * (and took no IPI meanwhile): the hypervisor keeps the real one on and the enable the guest's.
 */
static void check_apic_global_disable(void)
{
    volatile u32 *apic = (volatile u32 *)0xfee00000u;
    u64 base = rdmsr(0x1b);
    if (base & (1u << 10))
        return step("apic_global_disable", 0, "x2APIC mode: this step needs xAPIC mode");
    static const u32 regs[] = { 0xf0, 0x320, 0x350, 0x360, 0x370 };
    u32 saved[5];
    for (u32 i = 0; i < 5; i++)
        saved[i] = apic[regs[i] / 4];
    wrmsr(0x1b, base & ~0x800ull);
    u64 off = rdmsr(0x1b);
    wrmsr(0x1b, base);
    u64 on = rdmsr(0x1b);
    u32 svr = apic[0xf0 / 4], lint0 = apic[0x350 / 4];
    for (u32 i = 0; i < 5; i++)
        apic[regs[i] / 4] = saved[i];
    nmi_count = 0;
    apic[0x310 / 4] = apic[0x20 / 4] & 0xff000000u;    /* destination: own ID */
    apic[0x300 / 4] = 4u << 8;                         /* delivery mode NMI */
    for (u32 spins = 0; !nmi_count && spins < 10000000u; spins++)
        __asm__ volatile("pause");
    int ok = !(off & 0x800) && on == base && (svr & 0x1ff) == 0xff && (lint0 & 0x10000) && nmi_count == 1;
    if (!ok) {
        puts("mbtest: apic_global_disable: off ");
        puthex((u32)off);
        puts(" on ");
        puthex((u32)on);
        puts(" svr ");
        puthex(svr);
        puts(" lint0 ");
        puthex(lint0);
        puts(" nmis ");
        puthex(nmi_count);
        putc('\n');
    }
    step("apic_global_disable", ok, ok ? "EN off and on read back; SVR FFh, LVTs masked after; a self NMI delivered"
                                       : "the APIC did not come back as after reset, or took no NMI");
}

/*
 * EFER.LME set and cleared again with paging and PAE off: legal, LME acts only when CR0.PG is set (SDM
 * Vol. 3A 10.8.5, APM Vol. 2 14.6.1). The xAPIC stores stay policed afterwards. Under QEMU 7.2 the
 * #VMEXIT from that state left the host running without CR0.WP, and guest stores went through the
 * read-only xAPIC page (chaos seed 1: a real INIT reset the machine).
 */
static void check_apic_efer_lme(void)
{
    if ((RDCR(0) & (1u << 31)) || (RDCR(4) & (1u << 5)))
        return step("apic_efer_lme", 0, "paging or PAE on: this step needs both off");
    u64 efer = rdmsr(0xc0000080);
    wrmsr(0xc0000080, efer | (1ull << 8));
    u64 with_lme = rdmsr(0xc0000080);
    wrmsr(0xc0000080, efer);
    if (!(with_lme & (1ull << 8)) || rdmsr(0xc0000080) != efer)
        return step("apic_efer_lme", 0, "EFER.LME did not read back as written");
    int ok = apic_stores_policed("apic_efer_lme");
    step("apic_efer_lme", ok, ok ? "after EFER.LME on and off with paging off, xAPIC stores still policed"
                                 : "after EFER.LME on and off, an xAPIC store reached the APIC as written");
}

/*
 * Code at the end of the xAPIC page and past it. A CALL to the last slot (0xff0, reserved, reads 0):
 * the ADDs (00 00) in its bytes 0-3 run, the instruction at byte 4 is #UD (any access to bytes 4-15 of
 * a slot is undefined, SDM Vol. 3A 11.4.1). A CALL to the page after it, where nothing is: #UD at its
 * first byte (all ones). Before issue 13's fix the first walked on through the page into 0xfee01000,
 * which the hypervisor mapped as a hole: QEMU executed its APIC MMIO alias, Bochs has nothing there.
 */
/* CALL 'at' with EAX = 'eax' under a fixup: the fault it ended in (vector, EIP; ~0 and 0 if none). */
static void call_faulting(u32 at, u32 eax, u32 *vec, u32 *eip)
{
    u32 saved;
    fault_vector = ~0u;
    fault_eip = 0;
    __asm__ volatile("movl %%esp, %0\n\t" ARM "call *%1" LAND "\n\tmovl %0, %%esp"
                     : "=&r"(saved) : "r"(at), "a"(eax) : "memory", "cc");
    *vec = fault_vector;
    *eip = fault_eip;
}

/* A failed step's detail: each call's fault, "V at EIP". */
static void show_faults(const char *name, u32 n, const u32 *vec, const u32 *eip)
{
    puts("mbtest: ");
    puts(name);
    putc(':');
    for (u32 i = 0; i < n; i++) {
        puts_hex(" ", vec[i]);
        puts_hex(" at ", eip[i]);
    }
    putc('\n');
}

static void check_apic_fetch_end(void)
{
    static volatile u8 target;
    u32 vec[2], eip[2];
    const u32 at[2] = { 0xfee00ff0u, 0xfee01000u };
    for (u32 i = 0; i < 2; i++)
        call_faulting(at[i], (u32)&target, &vec[i], &eip[i]);
    int ok = vec[0] == 6 && eip[0] == 0xfee00ff4u && vec[1] == 6 && eip[1] == 0xfee01000u;
    if (!ok)
        show_faults("apic_fetch_end", 2, vec, eip);
    step("apic_fetch_end", ok, ok ? "#UD at byte 4 of the last xAPIC slot and at the page after it"
                                  : "code at the end of the xAPIC page or past it did not end in #UD");
}

/*
 * Code in the xAPIC page that stores into it (chaos seed 7 on Bochs): a CALL to byte 1 of the TPR slot,
 * whose bytes 1-3 read 0, runs ADD [EAX], AL (00 00) at 1 and at 3 with EAX at the reserved offset 0,
 * then #UD at byte 5 (SDM Vol. 3A 11.4.1). The store is undecodable (the decoder cannot fetch from the
 * page): before the fix the hypervisor stepped it from a copy, the step ended without the instruction
 * completing, and it retried the same store forever.
 */
static void check_apic_fetch_store(void)
{
    u32 vec[2], eip[2];
    const u32 at[2] = { 0xfee00081u, 0xfee00380u };
    /*
     * Second: JMP $ (EB FE) in the timer's initial count (masked LVT: no interrupt). On hardware it
     * spins forever; here each step of it ends where it began, and the hypervisor bounds steps without
     * progress: #UD there (11.4.1: undefined), never a retry without end.
     */
    *(volatile u32 *)0xfee00380u = 0x0000feebu;
    for (u32 i = 0; i < 2; i++)
        call_faulting(at[i], 0xfee00000u, &vec[i], &eip[i]);
    *(volatile u32 *)0xfee00380u = 0;           /* the timer stopped again */
    int ok = vec[0] == 6 && eip[0] == 0xfee00085u && vec[1] == 6 && eip[1] == at[1];
    if (!ok)
        show_faults("apic_fetch_store", 2, vec, eip);
    step("apic_fetch_store", ok, ok ? "stores by code in the xAPIC page completed (#UD at byte 5); JMP $ there ends in #UD"
                                    : "code in the xAPIC page storing into it, or spinning there, did not end in #UD");
}

/*
 * A fault by code in the xAPIC page, and an instruction that would run on unstepped. The TPR's low byte
 * 62h: BOUND EAX, [EAX] (62 00) with bounds above EAX raises #BR at the TPR (SDM Vol. 2A BOUND). Its
 * handler must not run with the page still redirected to the hypervisor's copy: a CALL to byte 5 of the
 * slot right after it must get #UD there (SDM 11.4.1), not run the copy's zeros (before the fix the
 * fault went straight to the guest, TF cleared, and the copy stayed executable until the next exit).
 * Then 17h, POP SS (the single-step trap waits for the next instruction, SDM Vol. 3A 6.8.3): #UD. Then
 * F4h, HLT (interrupts are off here: it waited for ever, holding the page's step): #UD.
 */
static void check_apic_fetch_fault(void)
{
    static volatile u32 bounds[2] = { 0xffffffffu, 0xffffffffu };
    static volatile u8 target;
    volatile u32 *tpr = (volatile u32 *)0xfee00080u;
    u32 tpr0 = *tpr & 0xff, vec[4], eip[4];
    const u32 at[4] = { 0xfee00080u, 0xfee00085u, 0xfee00080u, 0xfee00080u };
    *tpr = 0x62;
    fixup_tf_off = 1;   /* a hypervisor TF seen in the #BR frame must not end its step for it at the IRET */
    for (u32 i = 0; i < 4; i++) {
        if (i >= 2)
            *tpr = i == 2 ? 0x17 : 0xf4;        /* not between the first two: the store would exit */
        call_faulting(at[i], i ? (u32)&target : (u32)bounds, &vec[i], &eip[i]);
    }
    fixup_tf_off = 0;
    *tpr = tpr0;
    int ok = vec[0] == 5 && eip[0] == at[0];
    for (u32 i = 1; i < 4; i++)
        ok = ok && vec[i] == 6 && eip[i] == at[i];
    if (!ok)
        show_faults("apic_fetch_fault", 4, vec, eip);
    step("apic_fetch_fault", ok, ok ? "#BR from code in the xAPIC page, then #UD at byte 5, at POP SS and at HLT"
                                    : "a fault from code in the xAPIC page left the copy executable, or POP SS or HLT ran");
}

static void check_holes_many(const struct mb_info *mbi)
{
    u32 bits = phys_bits();
    u64 limit = 1ull << bits, start = (ram_top(mbi) + GIB - 1) & ~(GIB - 1);
    if (start < 4 * GIB)
        start = 4 * GIB;
    u64 stride = ((limit - start) / 384) & ~(GIB - 1);
    if (stride < GIB)
        stride = GIB;
    pae_on();
    u32 faults = fault_count, touched = 0;
    for (u64 at = start; at < limit && touched < 384; at += stride, touched++) {
        /* a different 2 MiB block and page inside each region, so every access is a distinct hole */
        u64 phys = at + (u64)(touched % 512) * MIB2 + (u64)(touched % 16) * 0x1000;
        volatile u32 *p = window_at(phys, PG_PCD | PG_PWT);
        u32 v = *p;
        *p = v;
    }
    /* the last page below MAXPHYADDR, then the first one above: the guest's own #PF (RSVD) if checked */
    volatile u32 *last = window_at(limit - 0x1000, PG_PCD | PG_PWT);
    (void)*last;
    int ok = fault_count == faults;
    fault_vector = ~0u;
    pae_pd[3][256] = limit | PG_P | PG_W | PG_PS | PG_PCD | PG_PWT;
    __asm__ volatile("invlpg (%0)" : : "r"(WINDOW) : "memory");
    __asm__ volatile(ARM "movl (%0), %%eax" LAND : : "r"(WINDOW) : "eax", "memory");
    u32 beyond = fault_vector;
    pae_pd[3][256] = 0;
    __asm__ volatile("invlpg (%0)" : : "r"(WINDOW) : "memory");
    pae_off();
    ok = ok && (beyond == 14 || beyond == ~0u);
    puts("mbtest: holes_many: ");
    putdec(touched);
    puts(" regions above RAM up to MAXPHYADDR ");
    putdec(bits);
    puts(", beyond it: vector ");
    puthex8(beyond);
    putc('\n');
    step("holes_many", ok && touched >= 256, ok ? "every access above RAM completed; the run goes on"
                                                : "an access above RAM faulted");
}

/* insn_len_remap (see the top): the page table for linear WINDOW .. +2 MiB, and the two code pages. */
static u64 remap_pt[512] __attribute__((aligned(4096)));
static u8 remap_code[2][4096] __attribute__((aligned(4096)));

static u32 call_window(void)
{
    u32 a = 0, c = 0;
    __asm__ volatile("call *%2" : "+a"(a), "+c"(c) : "S"(WINDOW) : "ebx", "edx", "memory");
    return a;
}

static void check_insn_len_remap(void)
{
    static const u8 code[2][5] = { { 0x3e, 0x0f, 0xa2, 0x40, 0xc3 }, { 0x0f, 0xa2, 0x40, 0x40, 0xc3 } };
    for (u32 i = 0; i < 2; i++)
        for (u32 j = 0; j < 5; j++)
            remap_code[i][j] = code[i][j];
    u32 a, b, c, d;
    cpuid(0, &a, &b, &c, &d);
    pae_on();
    u64 saved = pae_pd[3][256];
    remap_pt[0] = (u32)remap_code[0] | PG_P | PG_W;
    pae_pd[3][256] = (u32)remap_pt | PG_P | PG_W;
    __asm__ volatile("invlpg (%0)" : : "r"(WINDOW) : "memory");
    u32 before = hypercall(amd, HV_HC_EXIT_COUNT, HV_EXIT_CPUID);
    u32 got[5], want[5] = { a + 1, a + 2, a + 2, a + 1, a + 2 };
    got[0] = call_window();
    remap_pt[0] = (u32)remap_code[1] | PG_P | PG_W;                /* same RIP, other code */
    __asm__ volatile("invlpg (%0)" : : "r"(WINDOW) : "memory");
    got[1] = call_window();
    got[2] = call_window();                                         /* the translation cached */
    remap_pt[0] = (u32)remap_code[0] | PG_P | PG_W;                /* back to the prefixed code */
    __asm__ volatile("invlpg (%0)" : : "r"(WINDOW) : "memory");
    got[3] = call_window();
    for (u32 j = 0; j < 5; j++)                                     /* the same page, new bytes */
        remap_code[0][j] = code[1][j];
    got[4] = call_window();
    u32 exits = hypercall(amd, HV_HC_EXIT_COUNT, HV_EXIT_CPUID) - before;
    pae_pd[3][256] = saved;
    __asm__ volatile("invlpg (%0)" : : "r"(WINDOW) : "memory");
    pae_off();
    u32 bad = 0;
    while (bad < 5 && got[bad] == want[bad])
        bad++;
    static const char *const why[5] = {
        "the prefixed CPUID was not stepped over by 3 bytes",
        "after the remap the CPUID was not stepped over by 2 bytes",
        "the CPUID through the cached translation was not stepped over by 2 bytes",
        "after the remap back the prefixed CPUID was not stepped over by 3 bytes",
        "after its bytes were rewritten in place the CPUID was not stepped over by 2 bytes",
    };
    int ok = bad == 5 && exits == 5;
    step("insn_len_remap", ok, ok ? "CPUID at one RIP, page remapped and rewritten between the exits: every length right"
                                  : bad < 5 ? why[bad] : "not five CPUID exits");
}

static void check_high_walk(const struct mb_info *mbi)
{
    u64 pd_at = 0;
    for (u32 at = mbi->mmap_addr; at < mbi->mmap_addr + mbi->mmap_length && !pd_at;) {
        const struct mb_mmap *e = (const struct mb_mmap *)at;
        u64 base = (e->addr < 4 * GIB ? 4 * GIB : e->addr + MIB2 - 1) & ~(MIB2 - 1);
        if (e->type == 1 && e->addr + e->len >= base + MIB2)
            pd_at = base;
        at += e->size + 4;
    }
    if (!pd_at) {
        puts("mbtest: step high_walk: SKIP (no RAM above 4 GiB)\n");
        return;
    }
    pae_on();
    volatile u64 *pd = (volatile u64 *)window_at(pd_at, 0);
    for (u32 j = 0; j < 512; j++)
        pd[j] = pae_pd[3][j];                   /* the directory for 3-4 GiB, now above 4 GiB */
    pae_pdpt[3] = pd_at | PG_P;
    set_cr3((u32)pae_pdpt);                     /* PAE: the PDPTEs load on a CR3 write (4.4.1) */
    volatile u32 *tpr = (volatile u32 *)0xfee00080u;
    u32 tpr0 = *tpr & 0xff, before = hypercall(amd, HV_HC_EXIT_COUNT, HV_EXIT_STAGE2_FAULT);
    fault_vector = ~0u;
    *tpr = 0x20;
    u32 back = *tpr & 0xff;
    *tpr = tpr0;
    u32 after = hypercall(amd, HV_HC_EXIT_COUNT, HV_EXIT_STAGE2_FAULT);
    pae_pdpt[3] = (u32)pae_pd[3] | PG_P;
    set_cr3((u32)pae_pdpt);
    pae_off();
    int ok = back == 0x20 && after == before + 2 && fault_vector == ~0u;
    puts("mbtest: high_walk: page directory at ");
    puthex16(pd_at);
    putc('\n');
    step("high_walk", ok, ok ? "TPR stores through a page directory above 4 GiB emulated"
                             : "a TPR store through a page directory above 4 GiB went wrong");
}
/* INIT then SIPI (twice) with the given ICR destination bits, in xAPIC or x2APIC form. */
static void init_sipi_to(u32 dest_mode, u32 dest, int x2apic)
{
    u32 seq[3] = { ICR_INIT_ASSERT, ICR_STARTUP | (AP_TRAMPOLINE >> 12), ICR_STARTUP | (AP_TRAMPOLINE >> 12) };
    for (int i = 0; i < 3; i++) {
        if (x2apic) {
            wrmsr(0x830, (u64)dest << 32 | dest_mode | seq[i]);
        } else {
            *ICR_HI = dest << 24;
            *ICR_LO = dest_mode | seq[i];
        }
        delay(i ? 10000 : 100000);
    }
}

/* Wait for 'want' APs to have come up (expected), then a while more: nothing else may arrive. */
static u32 wait_alive(u32 want)
{
    for (u32 spins = 0; aps_alive < want && spins < 200000000u; spins++)
        __asm__ volatile("pause");
    delay(200000);
    return aps_alive;
}

/* An INIT-SIPI that must reach nobody: the emulation is synchronous, the AP's start would be quick. */
static u32 wait_none(u32 alive)
{
    delay(2000000);
    return aps_alive - alive;
}

#define ICR_LOGICAL (1u << 11)

static void check_logical_ipi(const struct mb_info *mbi)
{
    const char *cmdline = (const char *)mbi->cmdline;
    if (cmdline_cpus(cmdline) != 2) {
        puts("mbtest: step logical_ipi: SKIP (needs cpus=2)\n");
        return;
    }
    int x2apic = (rdmsr(0x1b) & (1u << 10)) != 0;
    u32 alive = aps_alive, none, one, none2 = 0, one2 = 0;
    if (x2apic) {
        /* the AP's x2APIC ID 1: logical ID cluster 0, bit 1 (SDM Vol. 3A 11.12.10.2) */
        init_sipi_to(ICR_LOGICAL, 0x00010002u, 1);      /* cluster 1: nobody */
        none = wait_none(alive);
        init_sipi_to(ICR_LOGICAL, 0x00000002u, 1);
        one = wait_alive(alive + 1) - alive;
        none2 = 0, one2 = 1;
    } else {
        /* flat model: BSP bit 0, AP bit 1 (the AP sets its LDR when restarted by physical INIT-SIPI) */
        *(volatile u32 *)0xfee000e0u = 0xffffffffu;
        *(volatile u32 *)0xfee000d0u = 0x01000000u;
        ap_dfr = 0xffffffffu;
        ap_ldr = 0x02000000u;
        init_sipi_to(0, 1, 0);                          /* physical, APIC ID 1 */
        alive = wait_alive(alive + 1);
        init_sipi_to(ICR_LOGICAL, 0x04, 0);             /* bit 2: nobody */
        none = wait_none(alive);
        ap_dfr = 0x0fffffffu;                           /* the next start moves the AP to cluster 1, member bit 1 */
        ap_ldr = 0x12000000u;
        init_sipi_to(ICR_LOGICAL, 0x02, 0);             /* bit 1: the AP */
        one = wait_alive(alive + 1) - alive;
        alive += one;
        /* cluster model: BSP cluster 1 member bit 0, AP cluster 1 member bit 1 */
        *(volatile u32 *)0xfee000e0u = 0x0fffffffu;
        *(volatile u32 *)0xfee000d0u = 0x11000000u;
        init_sipi_to(ICR_LOGICAL, 0x22, 0);             /* cluster 2: nobody */
        none2 = wait_none(alive);
        init_sipi_to(ICR_LOGICAL, 0x12, 0);             /* cluster 1, member bit 1: the AP */
        one2 = wait_alive(alive + 1) - alive;
        *(volatile u32 *)0xfee000e0u = 0xffffffffu;     /* back to reset values */
        *(volatile u32 *)0xfee000d0u = 0;
        ap_ldr = 0;
    }
    int ok = none == 0 && one == 1 && none2 == 0 && one2 == 1;
    puts("mbtest: logical_ipi: restarts ");
    putdec(none);
    putdec(one);
    putdec(none2);
    putdec(one2);
    putc('\n');
    step("logical_ipi", ok, ok ? (x2apic ? "x2APIC logical INIT-SIPI reaches exactly the AP"
                                         : "xAPIC flat and cluster logical INIT-SIPI reach exactly the AP")
                               : "a logical-mode INIT-SIPI missed the AP or hit nobody's");
}
/* ==== end of the issue 13 robustness steps ============================================================ */

/* ---------------------------------------------------------------- forge (issue 13 item 4) ----------
 * "forge": a hostile guest's attempts to fool the host tools, then a triple fault (the hypervisor's
 * real status says code=1 reason=guest_triple_fault). In order:
 *   - a fake PASS status line on COM1 (the guest's console: the host must not believe it) and on port
 *     0xE9;
 *   - COM2, the hypervisor's private UART: its LSR should read 0xFF (hidden: an absent device), and a
 *     fake status line written there must go nowhere;
 *   - a well-formed record frame (magic, record, CRC-32) on port 0xE9, the hypervisor's frame stream:
 *     it must come out on the guest's console, never as a record;
 *   - a discovery header with one registered ring of FORGE_RECORDS records below 1 MiB (FORGE_HEADER):
 *     the host's discovery must not take it;
 *   - with "magic_break": Bochs' magic breakpoint (xchg bx,bx), which stops Bochs: the host must not
 *     take that for the hypervisor's end;
 *   - an unterminated line on COM1 and 0xE9 right before the triple fault: on a console shared with
 *     the hypervisor its status line would start mid-line, unparsable, leaving the fake one.
 * Forged records carry reason FORGE_REASON and RIP FORGE_RIP, so a test can look for them.
 */
#define COM2 0x2f8
#define FORGE_HEADER 0x80000u
#define FORGE_RING (FORGE_HEADER + 0x1000u)
#define FORGE_RECORDS 8u
#define FORGE_REASON 0x7e57u
#define FORGE_RIP 0xf0f0f0f0u

static void forge_record(struct hv_record *r, u64 seq)
{
    u8 *b = (u8 *)r;
    for (u32 i = 0; i < sizeof(*r); i++)
        b[i] = 0;
    r->seq = seq;
    r->kind = HV_EXIT_CPUID;
    r->reason = FORGE_REASON;
    r->rip = FORGE_RIP;
}

static void forge_option(const char *cmdline)
{
    if (!has_word(cmdline, "forge"))
        return;
    static const char fake[] = HV_STATUS_PREFIX " code=0 result=pass reason=ok\n";
    puts(fake);
    for (const char *p = fake; *p; p++)
        outb(0xe9, (u8)*p);

    u8 lsr = inb(COM2 + 5);
    puts("mbtest: forge: COM2 LSR reads ");
    puthex8(lsr);
    puts(lsr == 0xff ? " (no device)\n" : " (a device answers)\n");
    for (const char *p = fake; *p; p++)
        outb(COM2, (u8)*p);

    struct {
        u32 magic;
        struct hv_record rec;
        u32 crc;
    } __attribute__((packed)) frame;
    struct hv_record rec;
    forge_record(&rec, 1);
    frame.magic = HV_FRAME_MAGIC;
    frame.rec = rec;
    frame.crc = crc32((const u8 *)&rec, sizeof(rec));
    for (u32 i = 0; i < sizeof(frame); i++)
        outb(0xe9, ((const u8 *)&frame)[i]);
    puts("\nmbtest: forge: a record frame written to port 0xe9\n");

    struct hv_discovery *h = (struct hv_discovery *)FORGE_HEADER;
    u8 *hb = (u8 *)h;
    for (u32 i = 0; i < sizeof(*h); i++)
        hb[i] = 0;
    struct hv_ring *ring = (struct hv_ring *)FORGE_RING;
    u8 *rb = (u8 *)ring;
    for (u32 i = 0; i < sizeof(*ring); i++)
        rb[i] = 0;
    ring->capacity = 64;
    ring->policy = HV_RING_OVERWRITE;
    ring->enabled = 1;
    struct hv_record *recs = (struct hv_record *)(ring + 1);
    for (u32 i = 0; i < FORGE_RECORDS; i++)
        forge_record(&recs[i], i + 1);
    ring->head = FORGE_RECORDS;
    h->abi_version = HV_ABI_VERSION;
    h->header_size = sizeof(*h);
    h->vendor = amd ? HV_VENDOR_SVM : HV_VENDOR_VMX;
    h->cpu_count = 1;
    h->record_size = HV_RECORD_SIZE;
    h->ring_capacity = 64;
    h->ring[0] = FORGE_RING;
    h->magic = HV_DISCOVERY_MAGIC;  /* last: a scan never sees a half-built header */
    puts("mbtest: forge: a discovery header planted at ");
    puthex8(FORGE_HEADER);
    puts("\n");

    if (has_word(cmdline, "magic_break")) {
        puts("mbtest: forge: xchg bx,bx\n");
        while (!(inb(COM1 + 5) & 0x40))     /* LSR.TEMT: the line has left before Bochs stops */
            ;
        __asm__ volatile("xchg %%bx, %%bx" ::: "memory");
    }
    puts("mbtest: forge: triple fault\n");
    puts("forged>");
    outb(0xe9, '>');
    static const struct { u16 limit; u32 base; } __attribute__((packed)) no_idt = { 0, 0 };
    __asm__ volatile("lidt %0; int3" : : "m"(no_idt));
    for (;;)
        __asm__ volatile("cli; hlt");
}
/* ----------------------------------------------------------------------------- end of forge ------ */

/*
 * "exit_loop" (benchmarks/exit_path.py): under PAE paging, a loop of the exits a loaded guest makes
 * all the time: CPUID (leaves 0-7, as the storm), RDMSR of MTRRcap (0xFE, emulated for the guest),
 * IN from port 0xE9 (intercepted, then performed) and a store of the unchanged TPR (xAPIC offset 0x80:
 * a stage-2 fault, decoded and emulated). Never returns; the host ends the run.
 */
static void exit_loop_option(const char *cmdline)
{
    if (!has_word(cmdline, "exit_loop"))
        return;
    volatile u32 *tpr = (volatile u32 *)0xfee00080u;
    pae_on();
    puts("mbtest: exit_loop: CPUID, RDMSR, IN, TPR store in a loop\n");
    for (u32 i = 0;; i++) {
        u32 a, b, c, d;
        cpuid(i & 7, &a, &b, &c, &d);
        (void)rdmsr(0xfe);
        (void)inb(0xe9);
        *tpr = *tpr;
    }
}

void mbtest_main(u32 magic, const struct mb_info *mbi);
void mbtest_main(u32 magic, const struct mb_info *mbi)
{
    u32 a, b, c, d;
    cpuid(0, &a, &b, &c, &d);
    amd = b == 0x68747541;      /* "Auth"enticAMD */
    setup_idt();
    puts("mbtest: multiboot guest kernel running\n");
    if (magic == 0x2badb002 && (mbi->flags & (1u << 2)))     /* multiboot, with a command line */
        forge_option((const char *)mbi->cmdline);    /* "forge": never returns */
    if (magic == 0x2badb002 && (mbi->flags & (1u << 2)))
        exit_loop_option((const char *)mbi->cmdline);   /* "exit_loop": never returns */
    if (magic == 0x2badb002 && (mbi->flags & (1u << 2)) && has_word((const char *)mbi->cmdline, "spin_irq"))
        spin_irq_run();
    check_multiboot(magic, mbi);
    check_memmap(mbi);
    check_bss();
    check_cpuid();
    check_msr();
    check_cr4();
    check_cr_reserved();
    check_exceptions();
    check_isolation();
    check_hypercall();
    check_apic();
    check_mmio_forms();
    check_apic_fallback();      /* before x2APIC mode (cpus=N x2apic) turns the xAPIC window off */
    check_x2apic_msr_in_xapic_mode();
    check_apic_fetch();         /* issue 13 robustness block; before x2APIC mode, like apic_fallback */
    check_apic_policy();
    check_apic_efer_lme();
    check_apic_global_disable();
    check_apic_fetch_end();
    check_apic_fetch_store();
    check_apic_fetch_fault();
    check_ap_startup(mbi);
    check_logical_ipi(mbi);     /* issue 13 robustness block (needs the AP trampoline) */
    check_tf_emulated();
    check_dr7();
    check_getsec();
    check_prefixes();
    check_nmi_self();
    check_int3_on_hole_stack();
    check_double_fault_task(idt);
    check_holes_many(mbi);      /* issue 13 robustness block */
    check_high_walk(mbi);
    check_insn_len_remap();
    check_msr_policy();
    puts(failures ? "mbtest: FAILED\n" : "mbtest: all steps passed\n");
    debug_exit_option((const char *)mbi->cmdline);
    hypercall(amd, HV_HC_GUEST_EXIT, failures ? HV_STATUS_FAIL : HV_STATUS_PASS);
    for (;;)
        __asm__ volatile("cli; hlt");
}
