/*
 * EPT entry encoding (SDM Vol. 3C 29.3.2, Tables 29-1..29-6): the VT-x plug of the stage-2 builder
 * (hv/stage2.h), plus the EPT pointer. Pure encoders: no CPU access.
 */
#ifndef HV_VMX_EPT_H
#define HV_VMX_EPT_H

#include <hv/stage2.h>

extern const struct stage2_ops ept_ops;

/* VMCS EPT pointer for a 4-level walk of WB paging structures; 'ad' enables accessed/dirty flags. */
u64 ept_eptp(u64 pml4_hpa, bool ad);
/* STAGE2_SIZE_* flags from IA32_VMX_EPT_VPID_CAP (bit 16: 2 MiB, bit 17: 1 GiB; SDM Vol. 3D A.10). */
u32 ept_page_sizes(u64 ept_vpid_cap);

#endif
