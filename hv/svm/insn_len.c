/*
 * Length of the instruction that caused an exit, for CPUs without next-RIP saving (APM 15.7.1: NRIPS,
 * CPUID 8000_000Ah:EDX[3]; QEMU TCG leaves next_rip 0). Only the instructions whose exit hvtrace
 * handles by skipping them are decoded; anything else returns 0 and the caller stops the run, so a
 * wrong length can never silently resume the guest in the middle of an instruction.
 * Encodings: AMD APM Vol. 3 Appendix A (opcode maps).
 */
#include <hv/svm/svm.h>

u32 svm_insn_len(const u8 *p)
{
    u32 rex = (p[0] & 0xf0) == 0x40 ? 1 : 0;    /* a REX prefix only matters to MOV CRn */
    const u8 *op = p + rex;
    if (op[0] != 0x0f)
        return 0;
    switch (op[1]) {
    case 0xa2:          /* CPUID */
    case 0x32:          /* RDMSR */
    case 0x30:          /* WRMSR */
    case 0x08:          /* INVD */
    case 0x09:          /* WBINVD */
        return rex ? 0 : 2;
    case 0x01:
        if (!rex && (op[2] == 0xd9 || op[2] == 0xd1))   /* VMMCALL, XSETBV */
            return 3;
        return 0;
    case 0x22:          /* MOV CRn, reg: ModRM.mod must be 3 (register operand) */
        return (op[2] >> 6) == 3 ? rex + 3 : 0;
    }
    return 0;
}
