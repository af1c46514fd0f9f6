/* EFER bits (APM Vol. 2 3.1.7) and the ones a CPU names in CPUID (svm/efer.c). */
#ifndef HV_SVM_EFER_H
#define HV_SVM_EFER_H

#include <hv/types.h>

#define EFER_BIT_SCE      (1ull << 0)
#define EFER_BIT_LME      (1ull << 8)
#define EFER_BIT_LMA      (1ull << 10)
#define EFER_BIT_NXE      (1ull << 11)
#define EFER_BIT_SVME     (1ull << 12)
#define EFER_BIT_LMSLE    (1ull << 13)
#define EFER_BIT_FFXSR    (1ull << 14)
#define EFER_BIT_TCE      (1ull << 15)
#define EFER_BIT_MCOMMIT  (1ull << 17)
#define EFER_BIT_INTWB    (1ull << 18)
#define EFER_BIT_UAIE     (1ull << 20)
#define EFER_BIT_AUTOIBRS (1ull << 21)

/* CPUID 8000_0001 ECX/EDX, 8000_0008 EBX, 8000_0021 EAX (0 where the leaf is absent). */
u64 svm_efer_cpuid_bits(u32 e1_ecx, u32 e1_edx, u32 e8_ebx, u32 e21_eax);

#endif
