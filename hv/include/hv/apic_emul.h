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
/* A guest store of 'value' to APIC register 'offset' (xAPIC MMIO), emulated or written through. */
void apic_emul_mmio_write(struct percpu *pc, u32 offset, u32 value);
/* A guest WRMSR to the x2APIC ICR: emulated (INIT / STARTUP) or written through. */
void apic_emul_x2apic_icr(struct percpu *pc, u64 value);
/* What a back end knows about an exit that stored to the read-only xAPIC page. */
struct apic_store_exit {
    struct guest_paging paging;     /* the guest's, to fetch the instruction */
    u64 rip_linear;                 /* CS.base + RIP */
    bool long_mode;                 /* EFER.LMA and CS.L: REX prefixes exist */
    const u64 *gpr;                 /* the exit's register frame (struct guest_regs order) */
    u64 rsp;                        /* the guest's RSP (not in the frame) */
};
/*
 * Fetch and decode the store, emulate it or perform it on the real APIC, fill the record's operands
 * (arg0 register offset, arg1 value, insn_len). Returns the instruction length to step over, or 0 when
 * it cannot be decoded (reported; the caller dumps its state and ends the run).
 */
u32 apic_emul_guest_store(struct percpu *pc, const struct apic_store_exit *e, u64 gpa, struct hv_record *rec);
/* A guest WRMSR to IA32_APIC_BASE: performed unless it relocates the xAPIC page (then false: #GP). */
bool apic_emul_apic_base_write(u64 value);
/* Has the guest sent this running CPU an INIT (it must leave the guest and wait for SIPI)? */
bool apic_emul_init_pending(const struct percpu *pc);
/* A real INIT reached this CPU in the guest (VT-x INIT exit): it waits for SIPI like an emulated one. */
void apic_emul_init_arrived(struct percpu *pc);
/* A parked AP: wait (spinning, or in MWAIT) for the guest's INIT-SIPI, then return the SIPI vector. */
u8 apic_emul_wait_sipi(struct percpu *pc, bool mwait);

/*
 * The store at the guest's RIP that raised an MMIO write fault: MOV r/m32, r32 (89 /r) or MOV r/m32,
 * imm32 (C7 /0), with REX in 64-bit mode (SDM Vol. 2 opcode map, 2.1 instruction format).
 */
struct mmio_store {
    u32 len;        /* whole instruction */
    bool imm;       /* the value is 'value', else register 'reg' */
    u32 reg;        /* 0-15, struct guest_regs order */
    u32 value;
};
bool mmio_decode_store(const u8 *insn, bool long_mode, struct mmio_store *out);

#endif
