/* The exit handlers both back ends share: see exit_common.h. */
#include <hv/abi.h>
#include <hv/apic_emul.h>
#include <hv/apic_step.h>
#include <hv/backend.h>
#include <hv/console.h>
#include <hv/cpuid_leaves.h>
#include <hv/exit_common.h>
#include <hv/exit_fast.h>
#include <hv/fixup.h>
#include <hv/guest.h>
#include <hv/guest_mem.h>
#include <hv/hypercall.h>
#include <hv/io_policy.h>
#include <hv/memmap.h>
#include <hv/mmio.h>
#include <hv/msr_emul.h>
#include <hv/msr_policy.h>
#include <hv/panic.h>
#include <hv/stage2.h>
#include <hv/x86.h>


u32 cpu_phys_bits(void)
{
    static u32 bits;
    if (!bits) {
        u32 max, a, b, c, d;
        cpuid(0x80000000, 0, &max, &b, &c, &d);
        bits = 36;
        if (max >= 0x80000008) {
            cpuid(0x80000008, 0, &a, &b, &c, &d);
            bits = a & 0xff;
        }
    }
    return bits;
}

static u64 vcpu_guest_cr4(const void *ctx)
{
    struct vcpu *v = (struct vcpu *)ctx;
    struct guest_paging p;
    v->ops->paging(v, &p);
    return p.cr4;
}

/* CPUID: the guest's view (cpuid_leaves.h); only two leaves need the paging read for CR4. */
void exit_cpuid(struct vcpu *v)
{
    exit_fast_cpuid(v->gpr, vcpu_guest_cr4, v);
    vcpu_skip(v);
}

/*
 * RDMSR / WRMSR that exit: decided by the MSR policy table (msr_policy.h), the same for both back
 * ends. Executed ones run under a fault fixup: a #GP the CPU raises goes to the guest, as on hardware.
 */
static bool msr_access(struct vcpu *v, u32 msr, bool write, u64 *value)
{
    switch (msr_policy_action(msr_policy_cpu(), msr, write)) {
    case MSR_PASS:      /* owned by the guest; an exit here is the single-step or a race with the bitmap */
    case MSR_EXEC:
        return write ? !safe_wrmsr(msr, *value) : !safe_rdmsr(msr, value);
    case MSR_EMUL:
        return write ? msr_emul_write(v, msr, *value) : msr_emul_read(v, msr, value);
    case MSR_VENDOR:
        return v->ops->msr(v, msr, write, value) == VCPU_MSR_DONE;     /* PASS: the vendor lacks it */
    default:
        return false;
    }
}

void exit_msr_read(struct vcpu *v)
{
    u64 value = 0;
    if (!msr_access(v, (u32)v->gpr[1], false, &value)) {
        vcpu_inject_gp0(v);
        return;
    }
    v->gpr[0] = (u32)value;
    v->gpr[2] = value >> 32;
    vcpu_skip(v);
}

void exit_msr_write(struct vcpu *v)
{
    u64 value = (v->gpr[2] << 32) | (u32)v->gpr[0];
    if (!msr_access(v, (u32)v->gpr[1], true, &value)) {
        vcpu_inject_gp0(v);
        return;
    }
    vcpu_skip(v);
}

void exit_invd(struct vcpu *v)
{
    /* INVD would drop dirty lines the hypervisor owns: give it WBINVD semantics instead. */
    __asm__ volatile("wbinvd" ::: "memory");
    vcpu_skip(v);
}

void exit_hypercall(struct vcpu *v)
{
    /* Only the guest kernel may call the hypervisor; at CPL > 0 VMCALL / VMMCALL is #UD (SDM, APM). */
    if (v->ops->cpl(v) != 0) {
        vcpu_inject_ud(v);
        return;
    }
    v->gpr[0] = hypercall_dispatch(v->pc, v->gpr[0], v->gpr[3]);
    vcpu_skip(v);
}

void exit_undefined(struct vcpu *v)
{
    vcpu_inject_ud(v);
}

void exit_xsetbv(struct vcpu *v)
{
    u32 index = (u32)v->gpr[1];
    u64 value = (v->gpr[2] << 32) | (u32)v->gpr[0];
    /*
     * XSETBV at CPL > 0 is #GP (SVM checks the intercept first, APM 15.13.2; VT-x raises it before the
     * exit). Otherwise it is executed for real: the CPU itself checks XCR0 validity (SDM Vol. 2C XSETBV).
     */
    if (v->ops->cpl(v) != 0 || safe_xsetbv(index, value)) {
        vcpu_inject_gp0(v);
        return;
    }
    vcpu_skip(v);
}

/* Iterations of a REP INS / OUTS done per exit; the rest continue when the guest re-executes it. */
#define STRING_IO_BATCH 1024

/*
 * INS / OUTS to an intercepted port (SDM Vol. 2B INS, OUTS; REP: RCX counts, RSI/RDI step by the
 * operand size, backwards with RFLAGS.DF, all in the address size). Memory goes through the guest's
 * paging; an element that is not guest RAM raises #GP(0) after the elements before it are done.
 */
static void string_io(struct vcpu *v, const struct io_access *a, u32 whys)
{
    u64 mask = a->addr_bits == 64 ? ~0ull : a->addr_bits == 32 ? 0xffffffffull : 0xffffull;
    u64 count = a->rep ? v->gpr[1] & mask : 1;
    u32 reg = a->in ? 7 : 6;                            /* RDI / RSI */
    enum vcpu_seg seg = a->in ? VCPU_ES : (enum vcpu_seg)a->seg;
    /* In 64-bit mode only FS and GS have a base (SDM Vol. 3A 3.4.4). */
    u64 base = v->ops->code_bits(v) == 64 && seg != VCPU_FS && seg != VCPU_GS ? 0 : v->ops->seg_base(v, seg);
    i64 step = v->ops->rflags(v) & X86_RFLAGS_DF ? -(i64)a->size : (i64)a->size;
    struct guest_paging p;
    v->ops->paging(v, &p);
    for (u32 done = 0; count && done < STRING_IO_BATCH; done++) {
        u64 ptr = v->gpr[reg] & mask;
        u32 value = 0;
        bool ok = a->in ? (value = guest_io_in(a->port, a->size, whys), guest_write_linear(&p, base + ptr, &value, a->size))
                        : guest_read_linear(&p, base + ptr, &value, a->size);
        if (!ok) {
            vcpu_inject_gp0(v);
            return;
        }
        if (!a->in)
            guest_io_out(v->pc, a->port, a->size, value, whys);
        v->gpr[reg] = (v->gpr[reg] & ~mask) | ((ptr + (u64)step) & mask);
        count--;
        if (a->rep)
            v->gpr[1] = (v->gpr[1] & ~mask) | count;
    }
    if (!count)
        vcpu_skip(v);
}

void exit_io(struct vcpu *v, const struct io_access *a)
{
    /* The hypervisor's private devices are absent for the guest (guest_io.c); every try is recorded. */
    u32 whys = io_policy_whys(a->port, a->size);
    if (whys & IO_POLICY_BIT(IO_POLICY_HIDDEN))
        v->rec->flags |= HV_REC_SECURITY;
    if (a->string) {
        string_io(v, a, whys);
        return;
    }
    u32 mask = a->size == 4 ? 0xffffffffu : (1u << (8 * a->size)) - 1;
    if (a->in) {
        /* IN of 1 or 2 bytes keeps the rest of RAX; IN EAX zero-extends into RAX (SDM Vol. 1 3.4.1.1). */
        u64 keep = a->size == 4 ? 0 : v->gpr[0] & ~(u64)mask;
        v->gpr[0] = keep | guest_io_in(a->port, a->size, whys);
    } else {
        guest_io_out(v->pc, a->port, a->size, (u32)v->gpr[0] & mask, whys);
    }
    vcpu_skip(v);
}

/* The checks of MOV to CR0 / CR3 / CR4 that hold on every x86 CPU (SDM Vol. 2B MOV CR, Vol. 3A 2.5). */
static bool cr_write_allowed(struct vcpu *v, u32 cr, u64 value)
{
    struct guest_paging p;
    v->ops->paging(v, &p);
    bool lma = (p.efer & X86_EFER_LMA) != 0;
    switch (cr) {
    case 0:
        if (value >> 32)
            return false;                               /* reserved bits 63:32 */
        if ((value & X86_CR0_PG) && !(value & X86_CR0_PE))
            return false;                               /* PG without PE */
        if ((value & X86_CR0_NW) && !(value & X86_CR0_CD))
            return false;                               /* NW without CD */
        if (!(value & X86_CR0_PG) && v->ops->code_bits(v) == 64)
            return false;                               /* paging off in 64-bit mode */
        if ((value & X86_CR0_PG) && !(p.cr0 & X86_CR0_PG) && (p.efer & X86_EFER_LME) && !(p.cr4 & X86_CR4_PAE))
            return false;                               /* IA-32e mode activation needs CR4.PAE (10.8.5) */
        return true;
    case 3:
        /* In IA-32e mode bits above MAXPHYADDR are reserved (bit 63 is the no-flush hint with PCIDE). */
        if (lma) {
            u64 addr = (p.cr4 & X86_CR4_PCIDE) ? value & ~(1ull << 63) : value;
            return !(addr >> cpu_phys_bits());
        }
        return true;
    case 4:
        if (lma && !(value & X86_CR4_PAE))
            return false;                               /* PAE cannot be cleared in IA-32e mode */
        if (lma && ((value ^ p.cr4) & X86_CR4_LA57))
            return false;                               /* LA57 cannot change in IA-32e mode */
        if ((value & X86_CR4_PCIDE) && !(p.cr4 & X86_CR4_PCIDE) && (!lma || (p.cr3 & 0xfff)))
            return false;                               /* PCIDE needs IA-32e mode and CR3[11:0] = 0 */
        return true;
    default:
        return false;
    }
}

void exit_cr_write(struct vcpu *v, u32 cr, u64 value)
{
    if (!cr_write_allowed(v, cr, value) || !v->ops->write_cr(v, cr, value)) {
        vcpu_inject_gp0(v);
        return;
    }
    vcpu_skip(v);
}

/*
 * A guest store to the read-only xAPIC page: decoded and emulated (apic_emul.c, mmio_emul.c), the APIC
 * write emulated or performed on the real APIC. A fault the access raises is reflected; an instruction
 * the decoder does not know is executed for real against a copy of the page (apic_step.h).
 */
static void emulate_apic_store(struct vcpu *v, u64 gpa)
{
    struct mmio_fault fault;
    u64 rip = v->ops->rip(v);
    enum mmio_status st = apic_emul_guest_access(v, gpa, &fault);
    if (st == MMIO_EMUL_DONE) {
        /* A completed instruction (RIP moved; an unfinished REP stays) raises TF's single-step trap. */
        if (v->ops->rip(v) != rip && (v->ops->rflags(v) & X86_RFLAGS_TF))
            v->ops->single_step(v);
        return;
    }
    if (st == MMIO_EMUL_FAULT) {
        if (fault.vector == VEC_PF)
            v->ops->set_cr2(v, fault.cr2);
        vcpu_inject_exception(v, fault.vector, fault.has_error, fault.error);
        return;
    }
    if (apic_step_stuck(v)) {
        vcpu_inject_ud(v);          /* the same store stepped without progress again and again */
        return;
    }
    if (!apic_step_begin(v, false)) {
        /*
         * Not guest-triggerable: both back ends can always single-step (MTF or TF + #DB), and the page
         * is a 4 KiB leaf since apic_emul_init; failing here means the map itself is broken.
         */
        v->ops->dump(v, "undecodable APIC write, and this CPU cannot single-step it");
        hv_exit(HV_STATUS_FAIL, "apic_write");
    }
}

/* RAM the guest owns (usable or ACPI): always in the stage-2 map. */
static bool memmap_is_ram(u64 gpa)
{
    for (u32 i = 0; i < hv_memmap.count; i++) {
        const struct mem_range *r = &hv_memmap.range[i];
        if (gpa - r->base < r->length)
            return r->type == MEM_USABLE || r->type == MEM_ACPI_RECLAIM || r->type == MEM_ACPI_NVS;
    }
    return false;
}

/* Nothing answers: every read returns all ones, every write is dropped. */
static bool nothing_read(void *ctx, u32 offset, u32 size, u64 *value)
{
    (void)ctx;
    (void)offset;
    *value = size >= 8 ? ~0ull : (1ull << (8 * size)) - 1;
    return true;
}

static bool nothing_write(void *ctx, u32 offset, u32 size, u64 value)
{
    (void)ctx;
    (void)offset;
    (void)size;
    (void)value;
    return true;
}

/*
 * A guest access to a guest-physical address that stays unmapped: nothing lives there (no RAM, no
 * device the guest may reach), and the hole mapping was refused (at or above MAXPHYADDR, or above the
 * stage-2 map once the budget of hole tables is spent, stage2_holes.c). On a real platform such a cycle
 * is not claimed by any device and ends in a master abort: a read returns all ones, a write is dropped
 * (PCI Local Bus Specification 3.0, 3.3.3.1). The instruction is emulated that way (mmio.h), without
 * mapping anything; the run goes on. A fetch from there reads FFh bytes, FF FF is Group 5 /7, a
 * reserved encoding (SDM Vol. 2D Table A-6): #UD. An instruction the MMIO emulator does not know (or an
 * access that also touches something else) gets #GP(0) instead: a deviation from hardware, but never a
 * stop and never an access that reaches the host.
 */
static void exit_nothing_there(struct vcpu *v, u64 gpa, u32 access)
{
    static u32 reports;
    u64 page = gpa & ~(u64)(PAGE_SIZE - 1);
    enum mmio_status st = MMIO_EMUL_UNSUPPORTED;
    struct mmio_result res;
    if (access & S2_FETCH) {
        vcpu_inject_ud(v);
    } else {
        const struct mmio_dev dev = { .base = page, .length = PAGE_SIZE, .read = nothing_read, .write = nothing_write };
        u64 rip = v->ops->rip(v);
        st = mmio_emulate(v, gpa, &dev, &res);
        if (st == MMIO_EMUL_DONE) {
            if (v->ops->rip(v) != rip && (v->ops->rflags(v) & X86_RFLAGS_TF))
                v->ops->single_step(v);
        } else if (st == MMIO_EMUL_FAULT) {
            if (res.fault.vector == VEC_PF)
                v->ops->set_cr2(v, res.fault.cr2);
            vcpu_inject_exception(v, res.fault.vector, res.fault.has_error, res.fault.error);
        } else {
            vcpu_inject_gp0(v);
        }
    }
    u32 n = __atomic_add_fetch(&reports, 1, __ATOMIC_RELAXED);
    /*
     * The first 8 in full; then at every power of two a count, so that a guest that loops on such an
     * access (chaos seed 6 on Bochs: IRET to 0xcfef2e06 and #UD, for ever) is never silent on the console.
     */
    if (n > 8 && !(n & (n - 1)))
        printk("%s: CPU %u: %u accesses where nothing is mapped so far, the last a %s of GPA 0x%lx (RIP 0x%lx)\n",
               v->vendor, v->pc->index, n, access & S2_WRITE ? "write" : access & S2_FETCH ? "fetch" : "read", gpa,
               v->ops->rip(v));
    if (n <= 8)
        printk("%s: CPU %u: %s of GPA 0x%lx, where nothing is mapped (RIP 0x%lx): %s\n", v->vendor, v->pc->index,
               access & S2_WRITE ? "write" : access & S2_FETCH ? "fetch" : "read", gpa, v->ops->rip(v),
               access & S2_FETCH              ? "#UD reflected (all-ones bytes)"
               : st == MMIO_EMUL_DONE         ? "emulated as all ones / dropped"
               : st == MMIO_EMUL_FAULT        ? "the instruction's fault reflected"
                                              : "not an instruction the emulator knows: #GP(0) reflected");
}

void exit_stage2_fault(struct vcpu *v, u64 gpa, u32 access)
{
    const char *what = access & S2_WRITE ? "write" : access & S2_FETCH ? "fetch" : "read";
    if (guest_gpa_is_hv(gpa)) {
        /* Hypervisor memory is absent from the stage-2 map (guest_isolation.c): never mapped, never written. */
        v->rec->flags |= HV_REC_SECURITY;
        security_event(v->pc->index, v->vendor, gpa, what, v->ops->rip(v));
        vcpu_inject_gp0(v);
        return;
    }
    if (apic_emul_is_apic(gpa)) {
        if (access & S2_WRITE) {
            emulate_apic_store(v, gpa);
            return;
        }
        /*
         * Not a store: an instruction fetch (the page is readable; without NX an NPF does not flag the
         * fetch, APM Vol. 2 15.25.6). Executing it reads the registers as code, as on bare metal. The
         * page never becomes writable: stores keep trapping (the INIT-SIPI emulation). The instruction
         * is single-stepped from a copy of the page (apic_step.h), since emulators cannot execute from
         * their APIC MMIO (Bochs panics: "prefetch: running in bogus memory"); where this CPU cannot
         * single-step, the page becomes readable and executable, never writable.
         */
        if (!apic_step_fetch_in_register(v) || apic_step_stuck(v)) {
            vcpu_inject_ud(v);      /* bytes 4-15 of a register slot: undefined, SDM Vol. 3A 11.4.1 */
            return;
        }
        if (apic_step_begin(v, true))
            return;
        if (stage2_protect(virt_backend->stage2, gpa & ~(u64)(PAGE_SIZE - 1), PAGE_SIZE, STAGE2_R | STAGE2_X) == 0) {
            v->ops->stage2_flush(v);
            return;
        }
        /* Never the hole path below: it would map the page writable (stores would reach the real ICR). */
        v->ops->dump(v, "the xAPIC page could not be made executable");
        hv_exit(HV_STATUS_FAIL, "apic_fetch");
    }
    /*
     * An instruction fetch from a page that is not RAM (a hole: MMIO or nothing) is never mapped for
     * it: emulators cannot execute from device MMIO (Bochs panics, QEMU 7.2's TCG asserts when an
     * instruction crosses from RAM into it), and on a PC an unclaimed fetch reads all ones (#UD, as
     * exit_nothing_there says). A hole already mapped for data stays executable (stage2_holes.c).
     */
    if ((access & S2_FETCH) && !memmap_is_ram(gpa)) {
        exit_nothing_there(v, gpa, access);
        return;
    }
    /*
     * A first touch of a memory-map hole: map that page and let the guest retry (stage2_holes.c). Not
     * at or above MAXPHYADDR: a stage-2 entry with such an address is an EPT misconfiguration (SDM
     * Vol. 3C 29.3.3.1) / a reserved-bit #NPF (APM Vol. 2 15.25.5), never a mapping.
     */
    if (!(gpa >> cpu_phys_bits()) && stage2_map_hole(virt_backend->stage2, &hv_memmap, gpa)) {
        v->ops->stage2_flush(v);
        return;
    }
    if (!memmap_is_ram(gpa)) {
        exit_nothing_there(v, gpa, access);
        return;
    }
    printk("%s: CPU %u: stage-2 fault at GPA 0x%lx (%s) RIP=0x%lx\n", v->vendor, v->pc->index, gpa, what,
           v->ops->rip(v));
    /* Guest RAM is always mapped (stage2_setup.c) and isolation handled above: the map itself is broken. */
    v->ops->dump(v, "stage-2 fault on guest RAM (the hypervisor's map is wrong)");
    hv_exit(HV_STATUS_FAIL, "stage2_fault");
}

void exit_record_gpr_operands(struct vcpu *v, u32 kind)
{
    const u64 *g = v->gpr;
    struct hv_record *r = v->rec;
    switch (kind) {
    case HV_EXIT_CPUID:
        r->arg0 = (u32)g[0];                            /* leaf */
        r->arg1 = (u32)g[1];                            /* sub-leaf */
        break;
    case HV_EXIT_MSR_READ:
    case HV_EXIT_MSR_WRITE:
    case HV_EXIT_XSETBV:
        r->arg0 = (u32)g[1];                            /* MSR index / XCR number */
        r->arg1 = kind == HV_EXIT_MSR_READ ? 0 : (g[2] << 32) | (u32)g[0];
        break;
    case HV_EXIT_VMCALL:
        r->arg0 = g[0];                                 /* hypercall function */
        r->arg1 = g[3];                                 /* argument (RBX) */
        break;
    }
}

void exit_print_gprs(const struct vcpu *v)
{
    const u64 *r = v->gpr;
    printk("  RAX=0x%lx RBX=0x%lx RCX=0x%lx RDX=0x%lx RSI=0x%lx RDI=0x%lx RBP=0x%lx\n", r[0], r[3], r[1], r[2], r[6],
           r[7], r[5]);
    printk("  R8=0x%lx R9=0x%lx R10=0x%lx R11=0x%lx R12=0x%lx R13=0x%lx R14=0x%lx R15=0x%lx\n", r[8], r[9], r[10],
           r[11], r[12], r[13], r[14], r[15]);
}
