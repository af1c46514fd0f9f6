/*
 * Length of the instruction that caused an exit, for CPUs without next-RIP saving (APM 15.7.1: NRIPS,
 * CPUID 8000_000Ah:EDX[3]; QEMU TCG leaves next_rip 0). The exit code fixes the opcode, so this only
 * skips prefixes and checks that the opcode is the one the exit implies: anything else returns 0 and
 * the caller stops, so a wrong length can never silently resume the guest mid-instruction.
 * Encodings: AMD APM Vol. 3 1.2 (legacy prefixes, REX) and Appendix A (opcode maps).
 */
#include <hv/svm/svm.h>
#include <hv/svm/vcpu.h>

#define MAX_INSN 15

static bool legacy_prefix(u8 b)
{
    switch (b) {
    case 0x66: case 0x67:                               /* operand / address size */
    case 0x2e: case 0x36: case 0x3e: case 0x26: case 0x64: case 0x65:   /* segment overrides */
    case 0xf0: case 0xf2: case 0xf3:                    /* LOCK, REPNE, REP */
        return true;
    }
    return false;
}

u32 svm_insn_prefixes(const u8 *p, u32 n, bool long_mode, u8 *rex)
{
    u32 at = 0;
    *rex = 0;
    while (at < n && at < MAX_INSN && legacy_prefix(p[at]))
        at++;
    if (long_mode && at < n && (p[at] & 0xf0) == 0x40)
        *rex = p[at++];                                 /* REX: only directly before the opcode */
    return at;
}

u32 svm_insn_len(const u8 *p, u32 n, bool long_mode, u64 code)
{
    u8 rex = 0;
    if (n > MAX_INSN)
        n = MAX_INSN;
    u32 at = n && p[0] == 0x0f ? 0 : svm_insn_prefixes(p, n, long_mode, &rex);     /* the usual: none */
    if (code == SVM_EXIT_HLT)                           /* HLT: F4, the one-byte map (Appendix A) */
        return at < n && p[at] == 0xf4 ? at + 1 : 0;
    if (at + 2 > n || p[at] != 0x0f)
        return 0;
    u8 op = p[at + 1];
    u32 len = at + 2;
    switch (code) {
    case SVM_EXIT_CPUID:
        return op == 0xa2 ? len : 0;
    case SVM_EXIT_MSR:
        return op == 0x32 || op == 0x30 ? len : 0;      /* RDMSR, WRMSR */
    case SVM_EXIT_INVD:
        return op == 0x08 ? len : 0;
    case SVM_EXIT_WBINVD:
        return op == 0x09 || op == 0x08 ? len : 0;      /* QEMU TCG reports INVD as WBINVD */
    case SVM_EXIT_VMMCALL:
        return op == 0x01 && len < n && p[len] == 0xd9 ? len + 1 : 0;
    case SVM_EXIT_XSETBV:
        return op == 0x01 && len < n && p[len] == 0xd1 ? len + 1 : 0;
    case SVM_EXIT_CR0_WRITE:
        if (op == 0x06)
            return len;                                 /* CLTS */
        if (op == 0x01)                                 /* LMSW r16: 0F 01 /6, register form */
            return len < n && (p[len] >> 6) == 3 && ((p[len] >> 3) & 7) == 6 ? len + 1 : 0;
        return op == 0x22 && len < n ? len + 1 : 0;
    case SVM_EXIT_CR3_WRITE:
    case SVM_EXIT_CR4_WRITE:
        /* MOV CRn, reg: 0F 22 /r, the ModRM's mod field is ignored (always a register operand). */
        return op == 0x22 && len < n ? len + 1 : 0;
    case SVM_EXIT_RDPMC:
        return op == 0x33 ? len : 0;
    }
    return 0;
}
