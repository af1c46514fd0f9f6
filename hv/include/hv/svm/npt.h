/*
 * NPT entry encoding (AMD APM Vol. 2 15.25): the AMD-V plug of the stage-2 builder (hv/stage2.h).
 * NPT entries are long-mode page-table entries. Pure encoders: no CPU access.
 *
 * Limits of the format, as seen through struct stage2_ops:
 *  - Memory types go through PAT/PCD/PWT and the host PAT MSR, assumed at its power-on value
 *    (PA0 WB, PA1 WT, PA2 UC-, PA3 UC, then the same again). WB, WT and UC are exact; WC and WP
 *    would need a reprogrammed PAT and are mapped UC. Decoding reports UC- as UC.
 *  - Readable is implied by present: W or X without R still reads; perms 0 clears P.
 *  - No-execute (bit 63) needs host EFER.NXE=1 (APM Vol. 2 15.25.7; else it is a reserved bit). The
 *    identity map never sets it; stage2_protect() without X does.
 *  - The walk of the guest's own page tables is a user write at the nested level (15.25.5): a
 *    range holding guest page tables must stay writable.
 */
#ifndef HV_SVM_NPT_H
#define HV_SVM_NPT_H

#include <hv/stage2.h>

extern const struct stage2_ops npt_ops;

/* STAGE2_SIZE_* flags: 2 MiB always (long-mode PDE.PS), 1 GiB if CPUID 80000001H:EDX.Page1GB[26]. */
u32 npt_page_sizes(u32 cpuid_80000001_edx);

#endif
