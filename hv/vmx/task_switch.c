/*
 * Task switches under VT-x. A task switch always exits (SDM Vol. 3C 26.1.2), so the hypervisor
 * performs it as the CPU would (SDM Vol. 3A 8.3 "Task Switching"): 32-bit TSSs through CALL, JMP, IRET
 * or a task gate in the IDT (32-bit Linux takes #DF that way). The exit qualification names the new
 * TSS and the source (Table 28-2); for a task gate the IDT-vectoring information holds the event,
 * whose error code is pushed on the new task's stack. The checks that fail raise the fault the SDM
 * lists for them (#TS, #NP, #GP with the selector as error code). A 16-bit TSS is not emulated: the
 * guest gets #TS(selector), and the console says so.
 */
#include <hv/abi.h>
#include <hv/console.h>
#include <hv/exit_common.h>
#include <hv/guest_mem.h>
#include <hv/vmx/task_switch.h>
#include <hv/vmx/vmcs.h>
#include <hv/x86.h>

enum ts_source { TS_CALL, TS_IRET, TS_JMP, TS_GATE };

#define DESC_BUSY      (1ull << 41)        /* type bit 1 of a TSS descriptor: busy */
#define DR7_LOCAL      0x155ull             /* L0-L3 and LE: cleared by a task switch (SDM Vol. 3B 18.2.4) */

/* The 32-bit TSS's dynamic fields (SDM Vol. 3A 8.2.1, Figure 8-2). */
struct tss32 {
    u32 link, esp0, ss0, esp1, ss1, esp2, ss2, cr3;
    u32 eip, eflags, gpr[8];                /* EAX ECX EDX EBX ESP EBP ESI EDI */
    u32 seg[6];                             /* ES CS SS DS FS GS */
    u32 ldt, trap;
};
_Static_assert(sizeof(struct tss32) == 0x68, "32-bit TSS");

struct seg_state {
    u16 sel;
    u64 base;
    u32 limit, ar;
};

static void paging_now(struct vcpu *v, struct guest_paging *p) { v->ops->paging(v, p); }

/* The 8-byte descriptor for 'sel' from the GDT or (TI) the current LDT; false if beyond the limit. */
static bool read_desc(struct vcpu *v, u16 sel, u64 *desc, u64 *where)
{
    u64 base = (sel & 4) ? vmread(GUEST_LDTR_BASE) : vmread(GUEST_GDTR_BASE);
    u64 limit = (sel & 4) ? vmread(GUEST_LDTR_LIMIT) : vmread(GUEST_GDTR_LIMIT);
    if ((u64)(sel & ~7u) + 7 > limit)
        return false;
    struct guest_paging p;
    paging_now(v, &p);
    *where = base + (sel & ~7u);
    return guest_read_linear(&p, *where, desc, 8);
}

static bool write_desc(struct vcpu *v, u64 where, u64 desc)
{
    struct guest_paging p;
    paging_now(v, &p);
    return guest_write_linear(&p, where, &desc, 8);
}

/* Base, limit (scaled by G) and VMX access rights of a descriptor (SDM Vol. 3A 3.4.5; Vol. 3C Table 25-2). */
static struct seg_state seg_from_desc(u16 sel, u64 d)
{
    u32 limit = (u32)(d & 0xffff) | (u32)((d >> 32) & 0xf0000);
    if (d & (1ull << 55))
        limit = (limit << 12) | 0xfff;
    return (struct seg_state){
        .sel = sel,
        .base = ((d >> 16) & 0xffffff) | ((d >> 32) & 0xff000000),
        .limit = limit,
        .ar = (u32)((d >> 40) & 0xf0ff),   /* type, S, DPL, P; AVL, L, D/B, G */
    };
}

static void write_seg(u32 index, const struct seg_state *s)
{
    vmwrite(GUEST_ES_SELECTOR + 2 * index, s->sel);
    vmwrite(GUEST_ES_BASE + 2 * index, s->base);
    vmwrite(GUEST_ES_LIMIT + 2 * index, s->limit);
    vmwrite(GUEST_ES_AR_BYTES + 2 * index, s->ar);
}

/*
 * Load a segment register of the new task (8.3 step 12: faults here belong to the new task). Null
 * selectors leave data segments unusable; CS and SS must be present code / writable data.
 */
static bool load_seg(struct vcpu *v, u32 index, u16 sel, bool vm86, u32 *fault_vec)
{
    struct seg_state s = { .sel = sel };
    if (vm86) {
        s = (struct seg_state){ sel, (u64)sel << 4, 0xffff, 0xf3 };    /* virtual-8086 (SDM 20.2.1) */
    } else if (!(sel & ~3u)) {
        if (index == SEG_CS || index == SEG_SS) {
            *fault_vec = VEC_TS;
            return false;
        }
        s.ar = 1u << 16;                                                /* unusable */
    } else {
        u64 d, where;
        if (!read_desc(v, sel, &d, &where) || !(d & (1ull << 44))) {  /* S = 1: code or data */
            *fault_vec = VEC_TS;
            return false;
        }
        if (!(d & (1ull << 47))) {                                      /* not present */
            *fault_vec = index == SEG_SS ? VEC_SS : VEC_NP;
            return false;
        }
        if (!(d & (1ull << 40))) {                                      /* set the accessed bit */
            d |= 1ull << 40;
            write_desc(v, where, d);
        }
        s = seg_from_desc(sel, d);
    }
    write_seg(index, &s);
    return true;
}

/* The EIP the old task resumes at: after the instruction for CALL/JMP/IRET/INT n, else where it stopped. */
static u32 saved_eip(enum ts_source src, u32 idt_info)
{
    u64 rip = vmread(GUEST_RIP);
    u32 type = (idt_info >> 8) & 7;
    bool software = src != TS_GATE || ((idt_info & INTR_INFO_VALID) && type >= VCPU_EVT_SW_INT);
    return (u32)(software ? rip + vmread(VM_EXIT_INSTRUCTION_LEN) : rip);
}

void vmx_task_switch(struct vcpu *v, u64 qual)
{
    enum ts_source src = (enum ts_source)((qual >> 30) & 3);
    u16 new_sel = (u16)qual;
    u32 idt = (u32)vmread(IDT_VECTORING_INFO);
    u32 sel_error = new_sel & ~3u;
    struct guest_paging p;
    paging_now(v, &p);

    /* The new TSS descriptor: in the GDT, a 32-bit TSS, present, busy only for IRET (8.3 steps 2-4). */
    u64 nd, nd_at;
    if ((new_sel & 4) || !read_desc(v, new_sel, &nd, &nd_at)) {
        vcpu_inject_exception(v, src == TS_IRET ? VEC_TS : VEC_GP, true, sel_error);
        return;
    }
    u32 type = (u32)(nd >> 40) & 0x1f;                      /* S + type */
    if (type == 0x01 || type == 0x03) {
        printk("vmx: CPU %u: task switch to a 16-bit TSS (selector 0x%x) is not emulated: #TS\n", v->pc->index,
               new_sel);
        vcpu_inject_exception(v, VEC_TS, true, sel_error);
        return;
    }
    bool busy = type == 0x0b;
    if ((type != 0x09 && type != 0x0b) || busy != (src == TS_IRET)) {
        vcpu_inject_exception(v, src == TS_IRET ? VEC_TS : VEC_GP, true, sel_error);
        return;
    }
    if (!(nd & (1ull << 47))) {
        vcpu_inject_exception(v, VEC_NP, true, sel_error);
        return;
    }
    struct seg_state nt = seg_from_desc(new_sel, nd);
    if (nt.limit < sizeof(struct tss32) - 1) {
        vcpu_inject_exception(v, VEC_TS, true, sel_error);
        return;
    }

    /* Save the old task's state in its TSS (step 7); IRET clears NT in the saved EFLAGS (step 6). */
    u16 old_sel = (u16)vmread(GUEST_TR_SELECTOR);
    u64 old_base = vmread(GUEST_TR_BASE);
    struct tss32 old, new;
    if (!guest_read_linear(&p, old_base, &old, sizeof(old)) || !guest_read_linear(&p, nt.base, &new, sizeof(new))) {
        vcpu_inject_exception(v, VEC_TS, true, sel_error);
        return;
    }
    u32 eflags = (u32)vmread(GUEST_RFLAGS);
    old.eip = saved_eip(src, idt);
    old.eflags = src == TS_IRET ? eflags & ~X86_RFLAGS_NT : eflags;
    for (u32 i = 0; i < 8; i++)
        old.gpr[i] = (u32)vcpu_gpr(v, i);
    for (u32 i = 0; i < 6; i++)
        old.seg[i] = (u32)vmread(GUEST_ES_SELECTOR + 2 * i);
    guest_write_linear(&p, old_base + 0x20, &old.eip, 0x60 - 0x20);

    /* Busy bits (steps 5, 9): JMP and IRET free the old TSS; all but IRET mark the new one busy. */
    u64 od, od_at;
    if ((src == TS_JMP || src == TS_IRET) && read_desc(v, old_sel, &od, &od_at))
        write_desc(v, od_at, od & ~DESC_BUSY);
    if (src != TS_IRET) {
        nd |= DESC_BUSY;
        write_desc(v, nd_at, nd);
    }
    /* CALL and task gates link back to the old task and set NT (step 8). */
    if (src == TS_CALL || src == TS_GATE) {
        new.link = old_sel;
        new.eflags |= X86_RFLAGS_NT;
        guest_write_linear(&p, nt.base, &new.link, 4);
    }

    /* Load the new task (steps 10-12): TR, CR0.TS, CR3, LDTR, EFLAGS, EIP, GPRs, segments. */
    nt.ar = (u32)((nd >> 40) & 0xf0ff);
    write_seg(SEG_TR, &nt);
    vmwrite(GUEST_CR0, vmread(GUEST_CR0) | X86_CR0_TS);
    vmwrite(CR0_READ_SHADOW, vmread(CR0_READ_SHADOW) | X86_CR0_TS);
    if ((p.cr0 & X86_CR0_PG) && !v->ops->write_cr(v, 3, new.cr3)) {
        vcpu_inject_exception(v, VEC_GP, true, 0);
        return;
    }
    vmwrite(GUEST_RFLAGS, new.eflags | 2);
    vmwrite(GUEST_RIP, new.eip);
    for (u32 i = 0; i < 8; i++)
        vcpu_set_gpr(v, i, new.gpr[i]);
    vmwrite(GUEST_DR7, vmread(GUEST_DR7) & ~DR7_LOCAL);
    vmwrite(GUEST_INTERRUPTIBILITY_INFO, 0);
    bool vm86 = new.eflags & X86_RFLAGS_VM;
    u32 vec = 0;
    u16 ldt = (u16)new.ldt;
    if (ldt & ~3u) {
        u64 ld, ld_at;
        if ((ldt & 4) || !read_desc(v, ldt, &ld, &ld_at) || ((ld >> 40) & 0x1f) != 0x02) {
            vcpu_inject_exception(v, VEC_TS, true, ldt & ~3u);
            return;
        }
        struct seg_state l = seg_from_desc(ldt, ld);
        write_seg(SEG_LDTR, &l);
    } else {
        struct seg_state l = { .sel = 0, .ar = 1u << 16 };
        write_seg(SEG_LDTR, &l);
    }
    static const u32 order[6] = { SEG_CS, SEG_SS, SEG_DS, SEG_ES, SEG_FS, SEG_GS };
    for (u32 i = 0; i < 6; i++) {
        u32 s = order[i];
        if (!load_seg(v, s, (u16)new.seg[s], vm86, &vec)) {
            vcpu_inject_exception(v, vec, true, new.seg[s] & ~3u);
            return;
        }
    }
    /* An exception delivered through the gate pushes its error code on the new stack (8.3 step 13). */
    if (src == TS_GATE && (idt & INTR_INFO_VALID) && (idt & INTR_INFO_DELIVER_CODE)) {
        struct guest_paging np;
        paging_now(v, &np);
        u32 err = (u32)vmread(IDT_VECTORING_ERROR_CODE);
        u64 esp = (vmread(GUEST_SS_AR_BYTES) & (1u << 14)) ? (u32)(new.gpr[4] - 4) : (u16)(new.gpr[4] - 4);
        if (!guest_write_linear(&np, vmread(GUEST_SS_BASE) + esp, &err, 4)) {
            vcpu_inject_exception(v, VEC_SS, true, 0);
            return;
        }
        vcpu_set_gpr(v, 4, esp);
    }
}
