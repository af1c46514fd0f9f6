/*
 * EnableSVM (the AMD mirror of the seed's EnableVMX, docs/walkthrough.md step 7): on one CPU, interrupts off,
 *   CPUID 8000_0001h:ECX.SVM -> CPUID 8000_000Ah:EDX.NP (and NRIPS, noted) -> VM_CR.SVMDIS clear
 *   -> EFER.SVME = 1 -> VM_HSAVE_PA = a pool page.
 * AMD APM Vol. 2 15.4 "Enabling SVM", 15.30.1 "VM_CR", 15.30.4 "VM_HSAVE_PA". A failed check prints
 * its name and leaves SVM off on that CPU.
 */
#include <hv/console.h>
#include <hv/fixup.h>
#include <hv/pool.h>
#include <hv/svm/svm.h>
#include <hv/x86.h>

struct svm_caps svm_caps;

static bool check(bool ok, const char *what, u32 cpu)
{
    if (!ok)
        printk("svm: CPU %u: check failed: %s; SVM stays off\n", cpu, what);
    return ok;
}

/*
 * CR4 bits the CPU implements (APM Vol. 2 3.1.3, CPUID per bit). VMXE (13) and SMXE (14) never exist
 * on AMD; everything not listed is reserved and a guest write setting it is #GP.
 */
static u64 cr4_allowed(void)
{
    u32 a, b7, c7, d, c1;
    cpuid(1, 0, &a, &b7, &c1, &d);
    cpuid(7, 0, &a, &b7, &c7, &d);
    u64 m = 0x7ff;                                      /* VME .. OSXMMEXCPT */
    if (c7 & (1u << 2)) m |= 1ull << 11;                /* UMIP */
    if (c7 & (1u << 16)) m |= 1ull << 12;               /* LA57 */
    if (b7 & (1u << 0)) m |= 1ull << 16;                /* FSGSBASE */
    if (c1 & (1u << 17)) m |= 1ull << 17;               /* PCIDE */
    if (c1 & (1u << 26)) m |= 1ull << 18;               /* OSXSAVE */
    if (b7 & (1u << 7)) m |= 1ull << 20;                /* SMEP */
    if (b7 & (1u << 20)) m |= 1ull << 21;               /* SMAP */
    if (c7 & (1u << 3)) m |= 1ull << 22;                /* PKE */
    if (c7 & (1u << 7)) m |= 1ull << 23;                /* CET */
    return m;
}

bool svm_enable(struct percpu *pc)
{
    u32 a, b, c, d, edx_ext;
    cpuid(0x80000000, 0, &a, &b, &c, &d);
    if (!check(a >= 0x8000000a, "CPUID 8000_0000h: extended leaves up to 8000_000Ah", pc->index))
        return false;
    cpuid(0x80000001, 0, &a, &b, &c, &edx_ext);
    if (!check(c & CPUID_80000001_ECX_SVM, "CPUID 8000_0001h:ECX.SVM[bit 2] = 1", pc->index))
        return false;
    cpuid(0x8000000a, 0, &a, &b, &c, &d);
    if (!check(d & CPUID_8000000A_EDX_NP, "CPUID 8000_000Ah:EDX.NP[bit 0] = 1 (nested paging)", pc->index))
        return false;
    bool nrips = d & CPUID_8000000A_EDX_NRIPS;

    /*
     * VM_CR.SVMDIS set means firmware disabled SVM (APM 15.30.1); EFER.SVME would then #GP. An
     * emulator without VM_CR (its RDMSR faults) has nothing disabled: treat it as 0.
     */
    u64 vm_cr = 0;
    safe_rdmsr(MSR_VM_CR, &vm_cr);
    if (!check(!(vm_cr & VM_CR_SVMDIS), "VM_CR.SVMDIS[bit 4] = 0 (SVM not disabled by firmware)", pc->index))
        return false;

    if (pc->index == 0)
        svm_caps = (struct svm_caps){
            .nrips = nrips,
            .flush_by_asid = d & CPUID_8000000A_EDX_FLUSH_BY_ASID,
            .cpuid_80000001_edx = edx_ext,
            .cr4_allowed = cr4_allowed(),
        };
    else if (!check(nrips == svm_caps.nrips, "same SVM features as the BSP", pc->index))
        return false;

    struct svm_cpu *s = pool_alloc(1, PAGE_SIZE, "svm_cpu");
    _Static_assert(sizeof(struct svm_cpu) <= PAGE_SIZE, "svm_cpu fits a page");
    s->vmcb = pool_alloc(1, PAGE_SIZE, "VMCB");
    s->hsave = pool_alloc(1, PAGE_SIZE, "VM_HSAVE area");
    s->host_vmcb = pool_alloc(1, PAGE_SIZE, "host VMSAVE area");
    s->msrpm = pool_alloc_immutable(2, "MSR permission map");
    s->iopm = pool_alloc_immutable(3, "I/O permission map");
    s->host_stack_top = (u64)pool_alloc(CPU_STACK_PAGES, PAGE_SIZE, "VMM stack") + CPU_STACK_PAGES * PAGE_SIZE;
    s->asid = pc->index + 1;            /* ASID 0 is the host's: VMRUN refuses it (APM 15.5.1) */
    s->nrips = nrips;

    /*
     * EFER.SVME before any other SVM instruction or MSR (APM 15.4); then the host save area. EFER.NXE
     * too: nested page tables are walked in the host's paging mode, where NX (bit 63) is a reserved bit
     * unless the host has NXE (15.25.5): without it a no-execute NPT leaf raises a reserved-bit #NPF.
     */
    u64 nxe = edx_ext & (1u << 20) ? EFER_NXE : 0;     /* CPUID 8000_0001h:EDX.NX */
    if (safe_wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_SVME | nxe)) {
        printk("svm: CPU %u: setting EFER.SVME faulted; SVM stays off\n", pc->index);
        return false;
    }
    wrmsr(MSR_VM_HSAVE_PA, (u64)s->hsave);
    pc->vendor = s;
    printk("svm: CPU %u: EFER.SVME set (ASID %u, nested paging, next-RIP save %s)\n", pc->index, s->asid,
           nrips ? "offered" : "absent: RIP advanced by decoding");
    return true;
}
