/*
 * Guest-driven AP start-up. The guest OS wakes its APs with INIT-SIPI-SIPI; a real INIT must never
 * reach a CPU the hypervisor owns (VMX root blocks it, Bochs 2.7 mishandles it in non-root; on AMD it
 * would reset the CPU under the guest). So the APs stay parked in host mode and the guest's ICR writes
 * are trapped: xAPIC through a read-only stage-2 mapping of the APIC page (the write is decoded and
 * either emulated or performed on the real APIC), x2APIC through the MSR 0x830 write intercept. INIT
 * puts the target in wait-for-SIPI; the first STARTUP after it launches that AP's guest in real mode at
 * the vector (SDM Vol. 3A 11.6.1 ICR, 9.4.4 MP initialization).
 */
#ifndef HV_APIC_EMUL_H
#define HV_APIC_EMUL_H

#include <hv/guest_mem.h>
#include <hv/mmio.h>
#include <hv/percpu.h>

#define APIC_REG_ICR_LO 0x300
#define APIC_REG_ICR_HI 0x310
#define MSR_X2APIC_ICR  0x830

struct stage2;

/* Map the xAPIC page read-only for the guest (writes trap). */
bool apic_emul_init(struct stage2 *s);
/* The xAPIC page's guest-physical (= host-physical) address, 0 before apic_emul_init. */
u64 apic_emul_page(void);
/* Is gpa inside the xAPIC page? */
bool apic_emul_is_apic(u64 gpa);
/* A store of 'value' to APIC register 'offset' (xAPIC MMIO) that passed the policy: emulated or written through. */
void apic_emul_mmio_write(struct percpu *pc, u32 offset, u32 value);
/*
 * A guest store of 'size' bytes at xAPIC 'offset' (decoded, or replayed from a single step): checked by
 * the write policy (apic_policy.h; a refused or changed value flags v->rec security, and its gpa
 * becomes that register's address), then passed to apic_emul_mmio_write.
 */
void apic_emul_guest_store(struct vcpu *v, u32 offset, u32 size, u32 value);
/* A guest WRMSR to the x2APIC ICR: emulated (INIT / STARTUP) or written through. */
bool apic_emul_x2apic_icr(struct vcpu *v, u64 value);       /* false: #GP; the ICR policy as for xAPIC */
/*
 * A guest access that faulted on the xAPIC page (a store: the page is read-only in the stage-2 map),
 * on the CPU 'v' that exited, at guest-physical 'gpa'. The instruction at CS:RIP is fetched through
 * the guest's paging, decoded and performed by mmio_emulate (mmio.h) with the xAPIC page as the device
 * (writes through apic_emul_guest_store and its policy, reads from the real APIC as mmio.h's
 * mmio_reg32_read defines them); v->rec gets arg0 = register offset, arg1 = the value
 * of the last APIC access, insn_len. Returns:
 *   MMIO_EMUL_DONE         performed; registers, RFLAGS and RIP updated through v->ops (RIP stays on
 *                          a REP string instruction with iterations to go: the guest resumes it)
 *   MMIO_EMUL_FAULT        nothing done: inject *fault (VEC_PF: set the guest's CR2 to fault->cr2 first)
 *   MMIO_EMUL_UNDECODABLE  not an instruction the decoder knows (reported on the console): nothing
 *   MMIO_EMUL_UNSUPPORTED  done, RIP unchanged; the caller uses its fallback (single-step on a scratch page)
 */
enum mmio_status apic_emul_guest_access(struct vcpu *v, u64 gpa, struct mmio_fault *fault);

/*
 * A guest WRMSR to IA32_APIC_BASE: false (#GP) if it relocates the xAPIC page or breaks the mode rules;
 * the global enable (EN) is the guest's own, the real APIC stays enabled (apic_emul.c). The read gives
 * the guest's view.
 */
bool apic_emul_apic_base_write(struct percpu *pc, u64 value);
u64 apic_emul_apic_base_read(struct percpu *pc);
/*
 * Has the guest sent this running CPU an INIT (it must leave the guest and wait for SIPI)? Taking it
 * clears it; a SIPI that came right behind it is already waiting (apic_emul_wait_sipi returns at once).
 * Inline: on every exit, and almost always no CPU has one latched (apic_emul_init_latched counts them;
 * it is raised before the NMI kick that makes the target exit, so that exit sees it).
 */
extern u32 apic_emul_init_latched;
bool apic_emul_take_init_latched(struct percpu *pc);
static inline bool apic_emul_take_init(struct percpu *pc)
{
    return __atomic_load_n(&apic_emul_init_latched, __ATOMIC_ACQUIRE) && apic_emul_take_init_latched(pc);
}
/* CPU 'index' may be running guest code: not parked, nor waiting for a SIPI in the hypervisor. */
bool apic_emul_may_run_guest(u32 index);
/* A real INIT reached this CPU in the guest (VT-x INIT exit): it waits for SIPI like an emulated one. */
void apic_emul_init_arrived(struct percpu *pc);
/* A parked AP: sleep (park.h) until the guest's INIT-SIPI, then return the SIPI vector. */
u8 apic_emul_wait_sipi(struct percpu *pc);

#endif
