/*
 * Fatal exception report: which CPU, which vector (with its SDM name), the error code, RIP, CR2 and
 * the whole register frame, and whether the CPU was in the guest or the hypervisor; then the run
 * ends with HV_STATUS_EXCEPTION. A fault taken by an instruction guarded with fixup.h resumes instead.
 * The hypervisor takes one interrupt, the wake-up IPI of a parked CPU (park.h); any other vector >= 32
 * is reported as unexpected. An NMI once the guest runs is held for it.
 */
#include <hv/abi.h>
#include <hv/backend.h>
#include <hv/console.h>
#include <hv/exception_frame.h>
#include <hv/gdbstub.h>
#include <hv/fixup.h>
#include <hv/panic.h>
#include <hv/park.h>
#include <hv/percpu.h>
#include <hv/vcpu.h>
#include <hv/x86.h>


/* SDM Vol. 3A 7.3, Table 7-1 "Protected-Mode Exceptions and Interrupts". */
static const char *const exception_names[32][2] = {
    [0] = { "#DE", "divide error" },          [1] = { "#DB", "debug" },
    [2] = { "NMI", "non-maskable interrupt" }, [3] = { "#BP", "breakpoint" },
    [4] = { "#OF", "overflow" },              [5] = { "#BR", "BOUND range exceeded" },
    [6] = { "#UD", "invalid opcode" },        [7] = { "#NM", "device not available" },
    [8] = { "#DF", "double fault" },          [9] = { "CSO", "coprocessor segment overrun" },
    [10] = { "#TS", "invalid TSS" },          [11] = { "#NP", "segment not present" },
    [12] = { "#SS", "stack-segment fault" },  [13] = { "#GP", "general protection" },
    [14] = { "#PF", "page fault" },           [15] = { "--", "reserved" },
    [16] = { "#MF", "x87 floating-point error" }, [17] = { "#AC", "alignment check" },
    [18] = { "#MC", "machine check" },        [19] = { "#XM", "SIMD floating-point exception" },
    [20] = { "#VE", "virtualization exception" }, [21] = { "#CP", "control protection" },
    [22] = { "--", "reserved" }, [23] = { "--", "reserved" }, [24] = { "--", "reserved" },
    [25] = { "--", "reserved" }, [26] = { "--", "reserved" }, [27] = { "--", "reserved" },
    [28] = { "#HV", "hypervisor injection" }, [29] = { "#VC", "VMM communication" },
    [30] = { "#SX", "security exception" },   [31] = { "--", "reserved" },
};

void exception_entry(struct exception_frame *f);

void exception_entry(struct exception_frame *f)
{
    struct percpu *me = this_cpu();
    if (park_interrupt(me, f->vector))
        return;                         /* the wake-up IPI of a parked CPU, or what it ignores (park.c) */
    /*
     * An NMI while this CPU is in the hypervisor (VT-x root operation) belongs to the guest, or is the
     * hypervisor's own kick: held and delivered at the next entry (vcpu.h), never fatal. Checked before
     * the fixup: an NMI taken while a guarded instruction runs is no fault of that instruction.
     */
    if (f->vector == 2 && me->launched) {
        vcpu_nmi_arrived(me);
        if (me->nmi_pending && virt_backend && virt_backend->nmi_held)
            virt_backend->nmi_held();
        return;
    }
    /* #DB and #BP belong to the gdb stub when it is on (before the fixups: a step of a guarded instruction is no fault). */
    if ((f->vector == 1 || f->vector == 3) && gdbstub_port && gdbstub_exception(f))
        return;
    struct fixup *fx = &me->fixup[me->in_root ? 1 : 0];
    if (fx->rip && f->vector < 32) {
        fx->fault = f->vector + 1;
        fx->error = f->error;
        fx->fault_rip = f->rip;
        f->rip = fx->rip;
        if (fx->rsp) {                  /* the fault came from CPL 3: come back to CPL 0 */
            f->cs = GDT_CODE64;
            f->ss = GDT_DATA;
            f->rsp = fx->rsp;
        }
        return;
    }
    const char *mnemonic = f->vector < 32 ? exception_names[f->vector][0] : "INT";
    const char *name = f->vector < 32 ? exception_names[f->vector][1] : "unexpected interrupt";
    /* One printk per line keeps each line whole while other CPUs print. */
    printk("hvtrace: FATAL: CPU %u (APIC %u) exception vector %lu %s (%s) error=0x%lx RIP=0x%lx CR2=0x%lx in %s\n",
           me->index, me->apic_id, f->vector, mnemonic, name, f->error, f->rip, read_cr2(),
           me->launched && !me->in_root ? "guest" : "hypervisor");
    printk("  CS=0x%lx SS=0x%lx RFLAGS=0x%lx RSP=0x%lx CR0=0x%lx CR3=0x%lx CR4=0x%lx\n", f->cs, f->ss, f->rflags,
           f->rsp, read_cr0(), read_cr3(), read_cr4());
    printk("  RAX=0x%016lx RBX=0x%016lx RCX=0x%016lx RDX=0x%016lx\n", f->rax, f->rbx, f->rcx, f->rdx);
    printk("  RSI=0x%016lx RDI=0x%016lx RBP=0x%016lx R8 =0x%016lx\n", f->rsi, f->rdi, f->rbp, f->r8);
    printk("  R9 =0x%016lx R10=0x%016lx R11=0x%016lx R12=0x%016lx\n", f->r9, f->r10, f->r11, f->r12);
    printk("  R13=0x%016lx R14=0x%016lx R15=0x%016lx\n", f->r13, f->r14, f->r15);
    hv_exit(HV_STATUS_EXCEPTION, "exception");
}
