/*
 * Self-test guest. After the blue pill this code runs in the guest on every CPU and causes each
 * handled exit kind at least once, checking every outcome against what the architecture defines
 * (Intel SDM / AMD APM) and the exit count against what the step must cause: the hypervisor's count
 * for the step's exit kind is read with the EXIT_COUNT hypercall before and after the step.
 * One line per step: "selftest: CPU n step NAME: PASS|FAIL (...)".
 */
#include <hv/abi.h>
#include <hv/cmdline.h>
#include <hv/console.h>
#include <hv/fixup.h>
#include <hv/memmap.h>
#include <hv/percpu.h>
#include <hv/x86.h>

#define MSR_FEATURE_CONTROL 0x3a
#define MSR_VMX_BASIC       0x480
#define MSR_TSC_AUX         0xc0000103
#define MSR_VM_CR           0xc0010114      /* AMD: SVM lock and disable (APM Vol. 2 15.30.1) */
#define VM_CR_LOCK          (1ul << 3)
#define VM_CR_SVMDIS        (1ul << 4)
#define MSR_NONEXISTENT     0x12345678      /* outside every architectural MSR range */
#define VEC_UD              7               /* vector + 1, as the fixup reports it */
#define VEC_GP              14
#define CR0_NE              (1ul << 5)
#define CR4_VMXE            (1ul << 13)
#define CR4_OSXSAVE         (1ul << 18)

static bool is_amd;

static u64 hypercall(u64 fn, u64 arg)
{
    u64 ret;
    if (is_amd)
        __asm__ volatile("vmmcall" : "=a"(ret) : "a"(fn), "b"(arg) : "memory");
    else
        __asm__ volatile("vmcall" : "=a"(ret) : "a"(fn), "b"(arg) : "memory");
    return ret;
}

/* ---- guarded instructions: each returns 0 or the vector + 1 it raised ------------------------- */

#define GUARDED(insn, ...)                                                                      \
    ({                                                                                          \
        struct fixup *fx_ = fixup_slot();                                                       \
        __asm__ volatile(ARM_FIXUP insn DISARM_FIXUP : [fx_rip] "+m"(fx_->rip) : __VA_ARGS__);  \
        fx_->fault;                                                                             \
    })

static u64 try_ud2(void) { return GUARDED("ud2", "i"(0) : "r11", "memory"); }
/*
 * rAX of VMRUN / VMLOAD must be a 4 KiB-aligned physical address, else they #GP before their
 * intercept is checked (APM Vol. 3 VMRUN, VMLOAD): point it at a page so the intercept is reached.
 */
static u8 svm_dummy_page[4096] __attribute__((aligned(4096)));

static u64 try_vmx_insn(void)
{
    u64 dummy = 0;
    /* VMXON from the guest exits (SDM Vol. 3C 26.1.2); VMRUN likewise on AMD (APM 15.5). */
    if (is_amd)
        return GUARDED("vmrun", "a"(svm_dummy_page) : "r11", "memory");
    return GUARDED("vmxon %[m]", [m] "m"(dummy) : "r11", "memory");
}
static u64 try_vmread(void) { return GUARDED("vmread %%rax, %%rbx", "a"(0ull) : "rbx", "r11", "memory"); }
/* VMLOAD from the guest exits like VMRUN (APM 15.5.2 / 15.7): the AMD counterpart of VMREAD here. */
static u64 try_vmload(void) { return GUARDED("vmload", "a"(svm_dummy_page) : "r11", "memory"); }
static u64 try_mov_cr4_rsi(u64 v) { return GUARDED("mov %%rsi, %%cr4", "S"(v) : "r11", "memory"); }
static u64 try_mov_cr4_r14(u64 v)
{
    register u64 r14 __asm__("r14") = v;
    return GUARDED("mov %%r14, %%cr4", "r"(r14) : "r11", "memory");
}
static void mov_cr0_rbx(u64 v) { __asm__ volatile("mov %0, %%cr0" : : "b"(v) : "memory"); }
static void mov_cr0_r13(u64 v)
{
    register u64 r13 __asm__("r13") = v;
    __asm__ volatile("mov %0, %%cr0" : : "r"(r13) : "memory");
}
static void mov_cr3_rdx(u64 v) { __asm__ volatile("mov %0, %%cr3" : : "d"(v) : "memory"); }
static void mov_cr3_r15(u64 v)
{
    register u64 r15 __asm__("r15") = v;
    __asm__ volatile("mov %0, %%cr3" : : "r"(r15) : "memory");
}
static u64 xgetbv0(void)
{
    u32 lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((u64)hi << 32) | lo;
}

/*
 * Drop to CPL 3 and execute VMCALL/VMMCALL there. The instruction must raise #UD (SDM Vol. 2C VMCALL:
 * "#UD if CPL > 0" in non-root when the hypervisor refuses it; APM VMMCALL likewise). The fixup brings
 * the CPU back to CPL 0 on this stack; 'fault_rip' tells us the #UD came from the call itself.
 */
static u64 user_vmcall(u64 *fault_rip, u64 *call_rip)
{
    struct fixup *fx = fixup_slot();
    static u8 user_stack[4096] __attribute__((aligned(16)));
    u64 vmcall_rip, vmmcall_rip;
    __asm__ volatile(
        "leaq 4f(%%rip), %[vmcall_rip]\n\t"
        "leaq 5f(%%rip), %[vmmcall_rip]\n\t"
        "leaq 1f(%%rip), %%r11\n\t"
        "movq %%r11, %[fx_rip]\n\t"
        "movq %%rsp, %[fx_rsp]\n\t"
        "pushq %[uss]\n\t"
        "pushq %[ursp]\n\t"
        "pushfq\n\t"
        "pushq %[ucs]\n\t"
        "leaq 2f(%%rip), %%r11\n\t"
        "pushq %%r11\n\t"
        "iretq\n"
        "2:\n\t"
        "cmpb $0, %[amd]\n\t"
        "jne 5f\n"
        "4:\n\t"
        "vmcall\n\t"
        "ud2\n"                        /* not reached when the call faults as it must */
        "5:\n\t"
        "vmmcall\n\t"
        "ud2\n"
        "1:\n\t"
        "movq $0, %[fx_rip]\n\t"
        "movq $0, %[fx_rsp]"
        : [fx_rip] "+m"(fx->rip), [fx_rsp] "+m"(fx->rsp), [vmcall_rip] "=&r"(vmcall_rip),
          [vmmcall_rip] "=&r"(vmmcall_rip)
        : [uss] "i"(GDT_USER_DATA | 3), [ucs] "i"(GDT_USER_CODE64 | 3),
          [ursp] "r"((u64)user_stack + sizeof(user_stack)), [amd] "m"(is_amd)
        : "r11", "rax", "memory", "cc");
    *fault_rip = fx->fault_rip;
    *call_rip = is_amd ? vmmcall_rip : vmcall_rip;
    return fx->fault;
}

/* ---- steps ---------------------------------------------------------------------------------- */

struct step {
    const char *name;
    u32 kind;           /* exit kind the step causes */
    u64 exits;          /* how many exits of that kind */
    bool (*run)(char *why, size_t n);
};

/*
 * Exits of the step's kind the runner expects: 'exits', unless the step changes it because the
 * architecture differs on this CPU (the step says why where it does).
 */
static u64 expect_exits;

#define FAILF(...) (snprintf(why, n, __VA_ARGS__), false)

static bool step_cpuid_basic(char *why, size_t n)
{
    u32 a, b, c, d;
    cpuid(0, 0, &a, &b, &c, &d);
    return a >= 1 ? true : FAILF("CPUID.0:EAX=%u, expected a max leaf >= 1", a);
}

static bool step_cpuid_hv_bit(char *why, size_t n)
{
    u32 a, b, c, d;
    cpuid(1, 0, &a, &b, &c, &d);
    if (!(c & (1u << 31)))
        return FAILF("CPUID.1:ECX.hypervisor[31] clear");
    if (c & (1u << 5))
        return FAILF("CPUID.1:ECX.VMX[5] visible to the guest");
    /* AMD reports SVM in another leaf: CPUID 8000_0001h:ECX.SVM[2] (APM Vol. 3 E.4.2), one more exit. */
    if (is_amd) {
        expect_exits += 1;
        cpuid(0x80000001, 0, &a, &b, &c, &d);
        if (c & (1u << 2))
            return FAILF("CPUID 8000_0001h:ECX.SVM[2] visible to the guest");
    }
    return true;
}

static bool step_cpuid_hv_leaf(char *why, size_t n)
{
    u32 a, sig[3];
    cpuid(0x40000000, 0, &a, &sig[0], &sig[1], &sig[2]);
    if (memcmp(sig, HV_CPUID_SIGNATURE, 12))
        return FAILF("signature leaf 0x40000000 does not read \"hvtrace\"");
    if (a != HV_CPUID_MAX_LEAF)
        return FAILF("0x40000000:EAX=0x%x, expected 0x%x", a, HV_CPUID_MAX_LEAF);
    u32 b, c, d;
    cpuid(0x40000001, 0, &a, &b, &c, &d);
    return a == HV_ABI_VERSION ? true : FAILF("0x40000001:EAX=%u, expected ABI %u", a, HV_ABI_VERSION);
}

static bool step_cpuid_subleaf(char *why, size_t n)
{
    /* CPUID.0BH:ECX[7:0] echoes the sub-leaf (SDM Vol. 2A CPUID, leaf 0BH): proves ECX is passed. */
    u32 a, b, c, d;
    cpuid(0xb, 1, &a, &b, &c, &d);
    return (c & 0xff) == 1 ? true : FAILF("CPUID.(0BH,1):ECX[7:0]=%u, expected 1", c & 0xff);
}

static bool step_msr_read(char *why, size_t n)
{
    u64 v;
    /*
     * AMD has no IA32_FEATURE_CONTROL (MSR 3AH is Intel's). Its switch for SVM is VM_CR: with SVM
     * hidden it must read as firmware that disabled and locked SVM does (SVMDIS and LOCK, APM 15.30.1).
     */
    if (is_amd) {
        if (safe_rdmsr(MSR_VM_CR, &v))
            return FAILF("RDMSR VM_CR faulted");
        return (v & (VM_CR_LOCK | VM_CR_SVMDIS)) == (VM_CR_LOCK | VM_CR_SVMDIS)
                   ? true : FAILF("VM_CR=0x%lx does not report SVM disabled and locked", v);
    }
    if (safe_rdmsr(MSR_FEATURE_CONTROL, &v))
        return FAILF("RDMSR IA32_FEATURE_CONTROL faulted");
    if (!(v & 1))
        return FAILF("IA32_FEATURE_CONTROL=0x%lx not locked", v);
    return (v & 6) ? FAILF("IA32_FEATURE_CONTROL=0x%lx still offers VMXON", v) : true;
}

static bool step_msr_write(char *why, size_t n)
{
    u64 want = 0x1000 + this_cpu()->index, got;
    if (safe_wrmsr(MSR_TSC_AUX, want))
        return FAILF("WRMSR IA32_TSC_AUX faulted");
    if (safe_rdmsr(MSR_TSC_AUX, &got) || got != want)
        return FAILF("IA32_TSC_AUX reads 0x%lx after writing 0x%lx", got, want);
    return true;
}

static bool step_msr_gp(char *why, size_t n)
{
    u64 v, f;
    if ((f = safe_rdmsr(MSR_NONEXISTENT, &v)) != VEC_GP)
        return FAILF("RDMSR 0x%x: vector+1=%lu, expected #GP", MSR_NONEXISTENT, f);
    if ((f = safe_rdmsr(MSR_VMX_BASIC, &v)) != VEC_GP)
        return FAILF("RDMSR IA32_VMX_BASIC: vector+1=%lu, expected #GP (VMX hidden)", f);
    return true;
}

static bool step_cr0(char *why, size_t n)
{
    /* CR0.NE is owned by the hypervisor (VMX fixed-1): the guest's writes land in the read shadow. */
    u64 cr0 = read_cr0();
    mov_cr0_rbx(cr0 & ~CR0_NE);
    u64 seen = read_cr0();
    mov_cr0_r13(cr0);
    if (seen != (cr0 & ~CR0_NE))
        return FAILF("CR0 reads 0x%lx after writing 0x%lx from RBX", seen, cr0 & ~CR0_NE);
    return read_cr0() == cr0 ? true : FAILF("CR0 reads 0x%lx after writing 0x%lx from R13", read_cr0(), cr0);
}

static bool step_cr3(char *why, size_t n)
{
    u64 cr3 = read_cr3();
    mov_cr3_rdx(cr3);
    mov_cr3_r15(cr3);
    return read_cr3() == cr3 ? true : FAILF("CR3 reads 0x%lx, wrote 0x%lx", read_cr3(), cr3);
}

static bool step_cr4(char *why, size_t n)
{
    /* Setting CR4.VMXE without VMX in CPUID is a reserved-bit write: #GP (SDM Vol. 3A 2.5). */
    u64 cr4 = read_cr4(), f;
    if (cr4 & CR4_VMXE)
        return FAILF("CR4 read shows VMXE: 0x%lx", cr4);
    if ((f = try_mov_cr4_rsi(cr4 | CR4_VMXE)) != VEC_GP)
        return FAILF("MOV CR4 (RSI) with VMXE: vector+1=%lu, expected #GP", f);
    if ((f = try_mov_cr4_r14(cr4 | CR4_VMXE)) != VEC_GP)
        return FAILF("MOV CR4 (R14) with VMXE: vector+1=%lu, expected #GP", f);
    return read_cr4() == cr4 ? true : FAILF("CR4 changed to 0x%lx", read_cr4());
}

static bool step_invd(char *why, size_t n)
{
    (void)why;
    (void)n;
    __asm__ volatile("invd" ::: "memory");
    return true;
}

static bool step_vmcall(char *why, size_t n)
{
    u64 r = hypercall(HV_HC_PING, 0);
    return r == HV_HC_PING_REPLY ? true : FAILF("PING returned 0x%lx", r);
}

static bool step_vmcall_user(char *why, size_t n)
{
    u64 at, call_rip, f = user_vmcall(&at, &call_rip);
    if (f != VEC_UD)
        return FAILF("CPL3 hypercall: vector+1=%lu, expected #UD", f);
    return at == call_rip ? true : FAILF("#UD at 0x%lx, the call is at 0x%lx", at, call_rip);
}

static bool step_virt_insn(char *why, size_t n)
{
    u64 f;
    if ((f = try_vmx_insn()) != VEC_UD)
        return FAILF("%s in the guest: vector+1=%lu, expected #UD", is_amd ? "VMRUN" : "VMXON", f);
    if ((f = is_amd ? try_vmload() : try_vmread()) != VEC_UD)
        return FAILF("%s in the guest: vector+1=%lu, expected #UD", is_amd ? "VMLOAD" : "VMREAD", f);
    return true;
}

static bool step_xsetbv(char *why, size_t n)
{
    u64 xcr0, f;
    /*
     * Without CR4.OSXSAVE (the hypervisor sets it only when CPUID.1:ECX.XSAVE[26] says the CPU has
     * XSAVE, core/cpu.c; QEMU's qemu64 model has none) XSETBV is #UD, raised before any intercept
     * check (SDM Vol. 2C / APM Vol. 3 XSETBV): no XSETBV exit, the #UD is reflected.
     */
    if (!(read_cr4() & CR4_OSXSAVE)) {
        expect_exits = 0;
        f = safe_xsetbv(0, 1);
        return f == VEC_UD ? true : FAILF("XSETBV without CR4.OSXSAVE: vector+1=%lu, expected #UD", f);
    }
    xcr0 = xgetbv0();
    if ((f = safe_xsetbv(0, xcr0)))
        return FAILF("XSETBV(0, 0x%lx) faulted: vector+1=%lu", xcr0, f);
    /* XCR0 bit 0 (x87) must be 1: clearing it is #GP (SDM Vol. 2C XSETBV). */
    if ((f = safe_xsetbv(0, 0)) != VEC_GP)
        return FAILF("XSETBV(0, 0): vector+1=%lu, expected #GP", f);
    return xgetbv0() == xcr0 ? true : FAILF("XCR0 reads 0x%lx, expected 0x%lx", xgetbv0(), xcr0);
}

/*
 * A memory-map hole is mapped on its first touch (core/stage2_holes.c): the first read faults at
 * stage 2 exactly once, the second read of the same page does not. Each CPU takes its own page.
 */
static bool step_stage2_hole(char *why, size_t n)
{
    u64 hole = 0;
    for (u32 i = 0; i + 1 < hv_memmap.count && !hole; i++) {
        u64 end = hv_memmap.range[i].base + hv_memmap.range[i].length;
        /* Each CPU its own 2 MiB window: the hypervisor maps a hole 2 MiB at a time (stage2_holes.c). */
        u64 mine = ALIGN_UP(end, MiB(2)) + this_cpu()->index * MiB(2);
        if (end >= MiB(1) && mine + MiB(2) <= hv_memmap.range[i + 1].base && mine + MiB(2) <= GiB(4))
            hole = mine;
    }
    if (!hole)
        return FAILF("no memory-map hole below 4 GiB to touch");
    (void)*(volatile u32 *)phys(hole);
    (void)*(volatile u32 *)phys(hole + 8);
    return true;
}

/*
 * HV_HC_SNAPSHOT: the hypervisor fills this CPU's snapshot area (abi.h) while handling the call, so
 * the snapshot must show that very exit: VMX exit reason 18 (VMCALL) with a guest RIP inside the
 * image; SVM exit code 0x81 (VMMCALL) at VMCB offset 0x70. The seqlock must read even (complete).
 */
static bool step_snapshot(char *why, size_t n)
{
    extern const u8 __image_start[], __image_end[];
    u64 count = hypercall(HV_HC_SNAPSHOT, 0);
    const struct hv_snapshot *s = this_cpu()->snapshot;
    if (count == HV_HC_UNKNOWN || !s)
        return FAILF("HV_HC_SNAPSHOT unsupported");
    if ((s->seq & 1) || s->count != count || s->cpu != this_cpu()->index || s->why != HV_SNAP_REQUEST)
        return FAILF("snapshot header seq=%lu count=%u/%lu cpu=%u why=%u", s->seq, s->count, count, s->cpu, s->why);
    u64 reason = ~0ull, rip = 0;
    for (u32 i = 0; i < s->count; i++) {
        if (s->field[i].encoding == (is_amd ? 0x70 : 0x4402))
            reason = s->field[i].value;
        if (s->field[i].encoding == (is_amd ? 0x578 : 0x681e))
            rip = s->field[i].value;
    }
    if (reason != (is_amd ? 0x81 : 18))
        return FAILF("snapshot exit reason 0x%lx, expected the hypercall's", reason);
    if (rip < (u64)__image_start || rip >= (u64)__image_end)
        return FAILF("snapshot guest RIP 0x%lx outside the image", rip);
    return true;
}

static bool step_exception(char *why, size_t n)
{
    u64 f = try_ud2();
    return f == VEC_UD ? true : FAILF("UD2: vector+1=%lu, expected #UD reflected", f);
}

static const struct step steps[] = {
    { "cpuid_basic", HV_EXIT_CPUID, 1, step_cpuid_basic },
    { "cpuid_hypervisor_bit", HV_EXIT_CPUID, 1, step_cpuid_hv_bit },
    { "cpuid_hypervisor_leaves", HV_EXIT_CPUID, 2, step_cpuid_hv_leaf },
    { "cpuid_subleaf", HV_EXIT_CPUID, 1, step_cpuid_subleaf },
    { "msr_read_intercepted", HV_EXIT_MSR_READ, 1, step_msr_read },
    { "msr_write_intercepted", HV_EXIT_MSR_WRITE, 1, step_msr_write },
    { "msr_faulting_gp", HV_EXIT_MSR_READ, 2, step_msr_gp },
    { "cr0_write_rbx_r13", HV_EXIT_CR_ACCESS, 2, step_cr0 },
    { "cr3_write_rdx_r15", HV_EXIT_CR_ACCESS, 2, step_cr3 },
    { "cr4_vmxe_gp_rsi_r14", HV_EXIT_CR_ACCESS, 2, step_cr4 },
    { "invd", HV_EXIT_INVD, 1, step_invd },
    { "vmcall_cpl0", HV_EXIT_VMCALL, 1, step_vmcall },
    { "vmcall_cpl3_ud", HV_EXIT_VMCALL, 1, step_vmcall_user },
    { "virt_insn_ud", HV_EXIT_VIRT_INSN, 2, step_virt_insn },
    { "xsetbv", HV_EXIT_XSETBV, 2, step_xsetbv },
    { "exception_reflect_ud", HV_EXIT_EXCEPTION, 1, step_exception },
    { "stage2_fault_hole", HV_EXIT_STAGE2_FAULT, 1, step_stage2_hole },
    { "snapshot_on_request", HV_EXIT_VMCALL, 1, step_snapshot },
};

bool guest_selftest(void);

bool guest_selftest(void)
{
    u32 a, b, c, d;
    cpuid(0, 0, &a, &b, &c, &d);
    is_amd = b == 0x68747541;   /* "Auth"enticAMD */
    u32 cpu = this_cpu()->index, passed = 0;
    for (u32 i = 0; i < ARRAY_SIZE(steps); i++) {
        const struct step *s = &steps[i];
        char why[160] = "";
        expect_exits = s->exits;
        u64 before = hypercall(HV_HC_EXIT_COUNT, s->kind);
        bool ok = s->run(why, sizeof(why));
        u64 after = hypercall(HV_HC_EXIT_COUNT, s->kind);
        /* The second EXIT_COUNT hypercall is itself a VMCALL exit. */
        u64 exits = after - before - (s->kind == HV_EXIT_VMCALL ? 1 : 0);
        u64 expected = expect_exits;
        if (ok && exits != expected) {
            snprintf(why, sizeof(why), "%lu exits of the expected kind, expected %lu", exits, expected);
            ok = false;
        }
        printk("selftest: CPU %u step %s: %s%s%s\n", cpu, s->name, ok ? "PASS" : "FAIL", why[0] ? ": " : "", why);
        passed += ok;
    }
    printk("selftest: CPU %u: %u/%u steps passed\n", cpu, passed, (u32)ARRAY_SIZE(steps));
    /*
     * Negative test of the exit dispatcher (cmdline.h unhandled_exit_test=1): on the last CPU execute
     * RDPMC, which the back end then intercepts without a handler. An instruction the guest can run at
     * will must not stop the run: the hypervisor reflects #UD (vector 6) and the run goes on.
     */
    if (hv_options.unhandled_exit_test && cpu + 1 == cpu_count) {
        printk("selftest: CPU %u: unhandled_exit_test=1: executing RDPMC\n", cpu);
        u64 vec = GUARDED("rdpmc", "c"(0) : "rax", "rdx", "r11", "memory");
        if (vec)        /* the fixup's fault is vector + 1 (fixup.h) */
            printk("selftest: CPU %u: unhandled_exit_test=1: RDPMC raised vector %lu\n", cpu, vec - 1);
        else
            printk("selftest: CPU %u: unhandled_exit_test=1: RDPMC did not fault\n", cpu);
    }
    return passed == ARRAY_SIZE(steps);
}
