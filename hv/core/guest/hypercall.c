/* The hypercall interface (abi.h HV_HC_*): one implementation for VMCALL and VMMCALL. */
#include <hv/abi.h>
#include <hv/backend.h>
#include <hv/console.h>
#include <hv/hypercall.h>

u64 hypercall_dispatch(struct percpu *pc, u64 fn, u64 arg)
{
    switch (fn) {
    case HV_HC_PING:
        return HV_HC_PING_REPLY;
    case HV_HC_EXIT_COUNT:
        return arg < HV_EXIT_KIND_COUNT ? pc->exit_kinds[arg] : HV_HC_UNKNOWN;
    case HV_HC_SNAPSHOT:
        if (!virt_backend || !virt_backend->snapshot || !pc->snapshot)
            return HV_HC_UNKNOWN;
        virt_backend->snapshot(pc, HV_SNAP_REQUEST);
        return pc->snapshot->count;
    case HV_HC_GUEST_EXIT:
        /* A loaded guest ends the run: its code becomes the status (a test kernel's verdict). */
        printk("guest: CPU %u: GUEST_EXIT hypercall, status %lu\n", pc->index, arg);
        pc->end_status = arg <= HV_STATUS_MAX ? (u32)arg : HV_STATUS_FAIL;    /* once recorded (trace.c) */
        pc->end_reason = arg == HV_STATUS_PASS ? "guest_pass" : "guest_fail";
        return 0;
    default:
        return HV_HC_UNKNOWN;
    }
}
