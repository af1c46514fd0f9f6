/*
 * Memory type range registers (SDM Vol. 3A 13.11). mtrr_read() copies the raw MSRs of the calling CPU
 * into a struct mtrr_state; everything else is pure logic over that copy, so the stage-2 builder and
 * the host-side unit tests share it without touching an MSR.
 */
#ifndef HV_MTRR_H
#define HV_MTRR_H

#include <hv/types.h>

/* Memory type encodings shared by MTRRs, PAT and EPT leaves (SDM Vol. 3A 13.11.1, Table 13-8). */
#define MEMTYPE_UC 0
#define MEMTYPE_WC 1
#define MEMTYPE_WT 4
#define MEMTYPE_WP 5
#define MEMTYPE_WB 6

#define MSR_MTRRCAP          0xfe
#define MSR_MTRR_PHYSBASE(n) (0x200 + 2 * (n))
#define MSR_MTRR_PHYSMASK(n) (0x201 + 2 * (n))
#define MSR_MTRR_FIX64K      0x250
#define MSR_MTRR_FIX16K_80   0x258
#define MSR_MTRR_FIX16K_A0   0x259
#define MSR_MTRR_FIX4K(n)    (0x268 + (n))      /* n = 0..7: 0xC0000, 0xC8000, ... 0xF8000 */
#define MSR_MTRR_DEF_TYPE    0x2ff

#define MTRRCAP_VCNT(cap)    ((u32)(cap) & 0xff)
#define MTRRCAP_FIX          (1ull << 8)
#define MTRR_DEF_TYPE_FE     (1ull << 10)       /* fixed-range MTRRs enabled */
#define MTRR_DEF_TYPE_E      (1ull << 11)       /* MTRRs enabled */
#define MTRR_PHYSMASK_V      (1ull << 11)       /* variable range valid */

#define MTRR_FIXED_MSRS 11
/*
 * Variable ranges kept. VCNT is 8..10 on every CPU and emulator we target; a CPU reporting more gets
 * a warning from mtrr_read() and its extra ranges are ignored.
 */
#define MTRR_MAX_VAR 32

/* Raw MSR values; all zero means "no MTRRs" (DEF_TYPE.E=0), which is what a CPU without them gets. */
struct mtrr_state {
    u64 cap;                        /* IA32_MTRRCAP */
    u64 def_type;                   /* IA32_MTRR_DEF_TYPE */
    u64 fixed[MTRR_FIXED_MSRS];     /* 0x250, 0x258, 0x259, 0x268..0x26F: ascending addresses */
    u32 var_count;                  /* min(VCNT, MTRR_MAX_VAR) */
    struct {
        u64 base, mask;             /* IA32_MTRR_PHYSBASEn / IA32_MTRR_PHYSMASKn */
    } var[MTRR_MAX_VAR];
    u8 phys_bits;                   /* MAXPHYADDR: CPUID 80000008H:EAX[7:0] */
};

/* Read this CPU's MTRRs (BSP at boot; the BIOS programs every CPU alike). */
void mtrr_read(struct mtrr_state *st);
/* Program this CPU's MTRRs from st (an AP gets the BSP's; core/mem/mtrr_sync.c). */
void mtrr_write(const struct mtrr_state *st);
/* DEF_TYPE.E: when clear, all of memory is UC to the hardware (SDM Vol. 3A 13.11.2.1). */
bool mtrr_enabled(const struct mtrr_state *st);
/*
 * Effective MTRR type of [base, base+len): the type at 'base', and *uniform = whether every byte of
 * the range has that type. Implements SDM Vol. 3A 13.11.4.1 (MTRR precedences).
 */
u8 mtrr_type_of_range(const struct mtrr_state *st, u64 base, u64 len, bool *uniform);

#endif
