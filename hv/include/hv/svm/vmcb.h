/*
 * The VMCB (AMD APM Vol. 2 Appendix B "Layout of VMCB"): a 4 KiB page, control area at 0x000
 * (Table B-1), state-save area at 0x400 (Table B-2). Plain memory: the hypervisor reads and writes
 * it directly between VMRUNs. Offsets below are from the start of the VMCB; every field used is
 * checked with _Static_assert against the APM table.
 */
#ifndef HV_SVM_VMCB_H
#define HV_SVM_VMCB_H

#include <hv/types.h>

/* One segment in the save area (Table B-2): attrib packs descriptor bits 47:40 and 55:52. */
struct vmcb_seg {
    u16 selector;
    u16 attrib;
    u32 limit;
    u64 base;
} __packed;
_Static_assert(sizeof(struct vmcb_seg) == 16, "VMCB segment is 16 bytes");
#define VMCB_ATTR_L  (1u << 9)     /* attrib bit 9 = descriptor bit 53 (L) */
#define VMCB_ATTR_DB (1u << 10)    /* attrib bit 10 = descriptor bit 54 (D/B) */

struct vmcb_control {
    u16 intercept_cr_read;      /* 0x000: bit n = CRn reads */
    u16 intercept_cr_write;     /* 0x002: bit n = CRn writes */
    u16 intercept_dr_read;      /* 0x004 */
    u16 intercept_dr_write;     /* 0x006 */
    u32 intercept_exceptions;   /* 0x008: bit n = exception vector n */
    u32 intercept_misc1;        /* 0x00c: INTR .. SHUTDOWN (SVM_INTERCEPT1_*) */
    u32 intercept_misc2;        /* 0x010: VMRUN .. (SVM_INTERCEPT2_*) */
    u32 intercept_misc3;        /* 0x014 */
    u8 reserved1[0x3c - 0x18];
    u16 pause_filter_threshold; /* 0x03c */
    u16 pause_filter_count;     /* 0x03e */
    u64 iopm_base;              /* 0x040: physical, 4 KiB aligned, 12 KiB */
    u64 msrpm_base;             /* 0x048: physical, 4 KiB aligned, 8 KiB */
    u64 tsc_offset;             /* 0x050 */
    u32 guest_asid;             /* 0x058 */
    u8 tlb_control;             /* 0x05c: SVM_TLB_* */
    u8 reserved2[3];
    u64 vintr;                  /* 0x060: V_TPR, V_IRQ, V_INTR_MASKING, ... */
    u64 interrupt_shadow;       /* 0x068 */
    u64 exitcode;               /* 0x070 */
    u64 exitinfo1;              /* 0x078 */
    u64 exitinfo2;              /* 0x080 */
    u64 exitintinfo;            /* 0x088: same format as event_inj */
    u64 np_enable;              /* 0x090: bit 0 nested paging */
    u64 avic_apic_bar;          /* 0x098 */
    u64 ghcb_pa;                /* 0x0a0 */
    u64 event_inj;              /* 0x0a8: vector 7:0, type 10:8, EV 11, V 31, error code 63:32 */
    u64 n_cr3;                  /* 0x0b0: nested page table root */
    u64 virt_ext;               /* 0x0b8: LBR virtualization, virtual VMSAVE/VMLOAD */
    u32 vmcb_clean;             /* 0x0c0 */
    u32 reserved3;
    u64 next_rip;               /* 0x0c8: with NRIPS, the RIP after the exiting instruction */
    u8 insn_len;                /* 0x0d0: with decode assists, bytes fetched */
    u8 insn_bytes[15];          /* 0x0d1 */
    u8 reserved4[0x400 - 0xe0];
} __packed;

struct vmcb_save {
    struct vmcb_seg es, cs, ss, ds, fs, gs, gdtr, ldtr, idtr, tr;  /* 0x400 .. 0x49f */
    u8 reserved1[0x4cb - 0x4a0];
    u8 cpl;                     /* 0x4cb */
    u32 reserved2;
    u64 efer;                   /* 0x4d0 */
    u8 reserved3[0x548 - 0x4d8];
    u64 cr4;                    /* 0x548 */
    u64 cr3;                    /* 0x550 */
    u64 cr0;                    /* 0x558 */
    u64 dr7;                    /* 0x560 */
    u64 dr6;                    /* 0x568 */
    u64 rflags;                 /* 0x570 */
    u64 rip;                    /* 0x578 */
    u8 reserved4[0x5d8 - 0x580];
    u64 rsp;                    /* 0x5d8 */
    u64 s_cet, ssp, isst_addr;  /* 0x5e0 .. 0x5f7 */
    u64 rax;                    /* 0x5f8 */
    u64 star;                   /* 0x600 */
    u64 lstar;                  /* 0x608 */
    u64 cstar;                  /* 0x610 */
    u64 sfmask;                 /* 0x618 */
    u64 kernel_gs_base;         /* 0x620 */
    u64 sysenter_cs;            /* 0x628 */
    u64 sysenter_esp;           /* 0x630 */
    u64 sysenter_eip;           /* 0x638 */
    u64 cr2;                    /* 0x640 */
    u8 reserved5[0x668 - 0x648];
    u64 g_pat;                  /* 0x668 */
    u64 dbgctl;                 /* 0x670 */
    u8 reserved6[0x1000 - 0x678];
} __packed;

struct vmcb {
    struct vmcb_control control;
    struct vmcb_save save;
} __packed;

#define VMCB_OFF(f) __builtin_offsetof(struct vmcb, f)
_Static_assert(sizeof(struct vmcb) == 4096, "VMCB is one page");
_Static_assert(VMCB_OFF(control.intercept_cr_read) == 0x000 && VMCB_OFF(control.intercept_cr_write) == 0x002,
               "CR intercepts");
_Static_assert(VMCB_OFF(control.intercept_dr_read) == 0x004 && VMCB_OFF(control.intercept_exceptions) == 0x008,
               "DR / exception intercepts");
_Static_assert(VMCB_OFF(control.intercept_misc1) == 0x00c && VMCB_OFF(control.intercept_misc2) == 0x010 &&
               VMCB_OFF(control.intercept_misc3) == 0x014, "instruction intercepts");
_Static_assert(VMCB_OFF(control.iopm_base) == 0x040 && VMCB_OFF(control.msrpm_base) == 0x048, "IOPM / MSRPM");
_Static_assert(VMCB_OFF(control.tsc_offset) == 0x050 && VMCB_OFF(control.guest_asid) == 0x058 &&
               VMCB_OFF(control.tlb_control) == 0x05c, "TSC offset, ASID, TLB control");
_Static_assert(VMCB_OFF(control.vintr) == 0x060 && VMCB_OFF(control.interrupt_shadow) == 0x068, "V_INTR, shadow");
_Static_assert(VMCB_OFF(control.exitcode) == 0x070 && VMCB_OFF(control.exitinfo1) == 0x078 &&
               VMCB_OFF(control.exitinfo2) == 0x080 && VMCB_OFF(control.exitintinfo) == 0x088, "exit info");
_Static_assert(VMCB_OFF(control.np_enable) == 0x090 && VMCB_OFF(control.event_inj) == 0x0a8 &&
               VMCB_OFF(control.n_cr3) == 0x0b0, "NP enable, EVENTINJ, nCR3");
_Static_assert(VMCB_OFF(control.vmcb_clean) == 0x0c0 && VMCB_OFF(control.next_rip) == 0x0c8 &&
               VMCB_OFF(control.insn_len) == 0x0d0 && VMCB_OFF(control.insn_bytes) == 0x0d1, "clean, nRIP, bytes");
_Static_assert(VMCB_OFF(save.es) == 0x400 && VMCB_OFF(save.cs) == 0x410 && VMCB_OFF(save.ss) == 0x420 &&
               VMCB_OFF(save.ds) == 0x430 && VMCB_OFF(save.fs) == 0x440 && VMCB_OFF(save.gs) == 0x450 &&
               VMCB_OFF(save.gdtr) == 0x460 && VMCB_OFF(save.ldtr) == 0x470 && VMCB_OFF(save.idtr) == 0x480 &&
               VMCB_OFF(save.tr) == 0x490, "segments");
_Static_assert(VMCB_OFF(save.cpl) == 0x4cb && VMCB_OFF(save.efer) == 0x4d0, "CPL, EFER");
_Static_assert(VMCB_OFF(save.cr4) == 0x548 && VMCB_OFF(save.cr3) == 0x550 && VMCB_OFF(save.cr0) == 0x558 &&
               VMCB_OFF(save.dr7) == 0x560 && VMCB_OFF(save.dr6) == 0x568, "CRs, DRs");
_Static_assert(VMCB_OFF(save.rflags) == 0x570 && VMCB_OFF(save.rip) == 0x578 && VMCB_OFF(save.rsp) == 0x5d8 &&
               VMCB_OFF(save.rax) == 0x5f8, "RFLAGS, RIP, RSP, RAX");
_Static_assert(VMCB_OFF(save.star) == 0x600 && VMCB_OFF(save.kernel_gs_base) == 0x620 &&
               VMCB_OFF(save.sysenter_eip) == 0x638, "syscall MSRs");
_Static_assert(VMCB_OFF(save.cr2) == 0x640 && VMCB_OFF(save.g_pat) == 0x668 && VMCB_OFF(save.dbgctl) == 0x670,
               "CR2, G_PAT, DBGCTL");

/* TLB_CONTROL (APM 15.16.1). */
#define SVM_TLB_NOTHING     0
#define SVM_TLB_FLUSH_ALL   1   /* every ASID: the only flush QEMU TCG implements */
#define SVM_TLB_FLUSH_GUEST 3   /* this guest's non-global entries */

/* EVENTINJ / EXITINTINFO (APM 15.20, Figure 15-4). */
#define SVM_EVT_VALID       (1ull << 31)
#define SVM_EVT_ERROR_VALID (1ull << 11)
#define SVM_EVT_TYPE_INTR   (0ull << 8)
#define SVM_EVT_TYPE_NMI    (2ull << 8)
#define SVM_EVT_TYPE_EXCEPT (3ull << 8)
#define SVM_EVT_TYPE_SOFT   (4ull << 8)

#endif
