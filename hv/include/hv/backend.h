/*
 * The vendor plug: core drives virtualization through these operations only and never includes a
 * vendor header. vmx/ (VT-x) and svm/ (AMD-V) each provide one instance.
 */
#ifndef HV_BACKEND_H
#define HV_BACKEND_H

#include <hv/percpu.h>

struct guest_start;
struct multiboot_info;
struct stage2;

struct hv_backend {
    const char *name;
    u32 vendor;                         /* abi.h HV_VENDOR_* */
    /* Does this CPU have the extension at all (CPUID)? */
    bool (*probe)(void);
    /* Once, on the BSP, before any CPU is enabled: shared structures such as the stage-2 map. */
    bool (*init)(void);
    /* On each CPU, interrupts off: capability checks and turning the extension on. */
    bool (*enable)(struct percpu *pc);
    /* Blue pill: returns 0 in the guest, or nonzero if the launch failed (already reported). */
    int (*launch)(struct percpu *pc);
    /* Enter a loaded guest with a fresh register state; returns only if the launch failed (reported). */
    int (*start_guest)(struct percpu *pc, const struct guest_start *gs);
    /* Optional: keep INIT / SIPI away from a CPU parked in host mode. */
    void (*hold)(void);
    /* Optional: undo hold() for the HLT of a parked CPU, so that its wake-up IPI can come in (park.c). */
    void (*release)(void);
    /*
     * Optional: an NMI for the guest arrived while this CPU was in the hypervisor, possibly after the
     * exit handler's last look (vcpu_exit_done): make the next entry exit as soon as the guest can
     * take it. Called from the NMI handler. (SVM needs none: GIF = 0 holds NMIs in the host.)
     */
    void (*nmi_held)(void);
    /* The stage-2 map every CPU shares (EPT / NPT), built by init. */
    struct stage2 *stage2;
    /* Fill pc->snapshot with the CPU's VMCS / VMCB (abi.h struct hv_snapshot), in host context. */
    void (*snapshot)(struct percpu *pc, u32 why);
    /* Native exit counters of one CPU ('exit_counters' of them, each named), printed by core. */
    u32 exit_counters;
    u64 (*exit_count)(const struct percpu *pc, u32 index);
    const char *(*exit_counter_name)(u32 index);
    /* Optional: read one field of this CPU's current VMCS live (VMREAD; the gdb stub's monitor vmread). */
    bool (*live_field)(u64 field, u64 *value);
};

extern const struct hv_backend vmx_backend;
extern const struct hv_backend svm_backend;

/* The back end in use, NULL before virt_run_all() picks one. */
extern const struct hv_backend *virt_backend;

/*
 * Virtualize every online CPU and run the self-test guest on each. False if a CPU failed a step;
 * true when every CPU passed, or when the CPU has no extension this hypervisor supports (reported).
 */
bool virt_run_all(void);
/* Every CPU's native exit counts, one line per CPU ("vmx: CPU n exits: ..."). */
void virt_print_exit_counts(void);
/*
 * This CPU got an INIT from the guest while it ran the guest: wait in host mode for the SIPI, then
 * enter the guest afresh in real mode at its vector (the stack of the interrupted exit is abandoned).
 */
__noreturn void virt_restart_this_cpu(void);
/* Virtualize every CPU and run the loaded guest (guest.h) on the BSP; the APs wait in host mode. */
__noreturn void virt_run_guest(const struct multiboot_info *mbi);

#endif
