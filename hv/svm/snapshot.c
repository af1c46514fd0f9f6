/*
 * VMCB snapshot: unlike the VMCS, the VMCB is plain memory, so the snapshot is the page itself as
 * (byte offset, qword) pairs: all 512 qwords, exactly HV_SNAPSHOT_MAX_FIELDS (abi.h). Same seqlock
 * protocol as vmx/snapshot.c: seq odd while written, even when complete.
 */
#include <hv/abi.h>
#include <hv/svm/svm.h>
#include <hv/x86.h>

_Static_assert(sizeof(struct vmcb) / 8 <= HV_SNAPSHOT_MAX_FIELDS, "the whole VMCB fits a snapshot");

void svm_snapshot(struct percpu *pc, u32 why)
{
    struct hv_snapshot *s = pc->snapshot;
    const struct svm_cpu *c = pc->vendor;
    if (!s || !c)
        return;
    __atomic_store_n(&s->seq, s->seq | 1, __ATOMIC_RELEASE);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    const u64 *q = (const u64 *)c->vmcb;
    u32 n = 0;
    for (u32 off = 0; off < sizeof(struct vmcb); off += 8, n++) {
        s->field[n].encoding = off;
        s->field[n].reserved = 0;
        s->field[n].value = q[off / 8];
    }
    if (pc->exit_regs)
        memcpy(s->gpr, pc->exit_regs, sizeof(s->gpr));
    s->gpr[4] = c->vmcb->save.rsp;      /* RSP lives in the VMCB, not in the exit frame */
    s->vendor = HV_VENDOR_SVM;
    s->cpu = pc->index;
    s->why = why;
    s->count = n;
    s->flags = 0;
    s->exit_reason = (u32)c->vmcb->control.exitcode;
    s->tsc = rdtsc();
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    __atomic_store_n(&s->seq, (s->seq | 1) + 1, __ATOMIC_RELEASE);
}
