/*
 * VMCS snapshot: the VMCS is opaque in memory, so every component the CPU supports is VMREAD into
 * this CPU's snapshot area (abi.h struct hv_snapshot). Encodings are enumerated rather than listed:
 * width (bits 14:13) x type (11:10) x index (9:1) up to IA32_VMX_VMCS_ENUM's highest index, full
 * access only (bit 0 = 0); a VMREAD that fails (VM-instruction error 12) means "not supported".
 * SDM Vol. 3C 25.11.2 "VMREAD, VMWRITE, and Encodings of VMCS Fields", Vol. 3D Appendix A.9.
 */
#include <hv/abi.h>
#include <hv/vmx/vmcs.h>
#include <hv/vmx/vmx.h>
#include <hv/x86.h>

void vmx_snapshot(struct percpu *pc, u32 why)
{
    struct hv_snapshot *s = pc->snapshot;
    if (!s)
        return;
    __atomic_store_n(&s->seq, s->seq | 1, __ATOMIC_RELEASE);     /* odd: being written */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    u32 n = 0, flags = 0;
    for (u32 width = 0; width < 4; width++)
        for (u32 type = 0; type < 4; type++)
            for (u32 index = 0; index <= vmx_caps.vmcs_enum_max_index; index++) {
                u32 enc = (width << 13) | (type << 10) | (index << 1);
                u64 value;
                if (!vmread_checked(enc, &value))
                    continue;
                if (n == HV_SNAPSHOT_MAX_FIELDS) {
                    flags |= HV_SNAP_TRUNCATED;
                    continue;
                }
                s->field[n].encoding = enc;
                s->field[n].reserved = 0;
                s->field[n].value = value;
                n++;
            }
    if (pc->exit_regs)
        memcpy(s->gpr, pc->exit_regs, sizeof(s->gpr));
    s->gpr[4] = vmread(GUEST_RSP);      /* RSP lives in the VMCS, not in the exit frame */
    s->vendor = HV_VENDOR_VMX;
    s->cpu = pc->index;
    s->why = why;
    s->count = n;
    s->flags = flags;
    s->exit_reason = (u32)vmread(VM_EXIT_REASON);
    s->tsc = rdtsc();
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    __atomic_store_n(&s->seq, (s->seq | 1) + 1, __ATOMIC_RELEASE); /* even: complete */
}
