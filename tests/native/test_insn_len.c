/*
 * Host-side checks of SVM's instruction-length decoder for CPUs without next-RIP saving (hv/svm/insn_len.c,
 * AMD APM Vol. 2 15.7.1): the opcode each exit code implies, after legacy prefixes and (64-bit mode only)
 * REX, with the encodings of APM Vol. 3 Appendix A (one- and two-byte opcode maps) and 1.2 (prefixes).
 * A byte sequence that is not the implied instruction, or is cut short, decodes to 0.
 */
#include <hv/svm/svm.h>

#include "check.h"

#define LEN(code, lm, ...) \
    svm_insn_len((const u8[]){ __VA_ARGS__ }, sizeof((const u8[]){ __VA_ARGS__ }), lm, code)

int main(void)
{
    /* Two-byte map: CPUID 0F A2, RDMSR 0F 32, WRMSR 0F 30, INVD 0F 08, WBINVD 0F 09, RDPMC 0F 33. */
    CHECK(LEN(SVM_EXIT_CPUID, false, 0x0f, 0xa2) == 2, "CPUID");
    CHECK(LEN(SVM_EXIT_MSR, true, 0x0f, 0x32) == 2 && LEN(SVM_EXIT_MSR, true, 0x0f, 0x30) == 2, "RDMSR, WRMSR");
    CHECK(LEN(SVM_EXIT_INVD, false, 0x0f, 0x08) == 2 && LEN(SVM_EXIT_WBINVD, false, 0x0f, 0x09) == 2, "INVD, WBINVD");
    CHECK(LEN(SVM_EXIT_RDPMC, false, 0x0f, 0x33) == 2, "RDPMC");
    /* 0F 01 with its ModRM: VMMCALL D9, XSETBV D1 (Table A-6, group 7). */
    CHECK(LEN(SVM_EXIT_VMMCALL, true, 0x0f, 0x01, 0xd9) == 3, "VMMCALL");
    CHECK(LEN(SVM_EXIT_XSETBV, true, 0x0f, 0x01, 0xd1) == 3, "XSETBV");
    CHECK(LEN(SVM_EXIT_VMMCALL, true, 0x0f, 0x01) == 0, "VMMCALL cut before its ModRM");
    /* CR writes: MOV CR, reg 0F 22 /r; CLTS 0F 06; LMSW 0F 01 /6 (register form only). */
    CHECK(LEN(SVM_EXIT_CR4_WRITE, true, 0x0f, 0x22, 0xe0) == 3, "MOV CR4, RAX");
    CHECK(LEN(SVM_EXIT_CR0_WRITE, false, 0x0f, 0x06) == 2, "CLTS");
    CHECK(LEN(SVM_EXIT_CR0_WRITE, false, 0x0f, 0x01, 0xf0) == 3, "LMSW AX");
    CHECK(LEN(SVM_EXIT_CR0_WRITE, false, 0x0f, 0x01, 0x30) == 0, "LMSW [EAX]: a memory form is not decoded");
    /* One-byte map: HLT F4, and what prefixes it may carry (ignored by the CPU, counted in the length). */
    CHECK(LEN(SVM_EXIT_HLT, false, 0xf4) == 1, "HLT");
    CHECK(LEN(SVM_EXIT_HLT, false, 0x2e, 0x3e, 0xf4) == 3, "HLT after two segment overrides");
    CHECK(LEN(SVM_EXIT_HLT, true, 0x48, 0xf4) == 2, "HLT after REX.W in 64-bit mode");
    CHECK(LEN(SVM_EXIT_HLT, false, 0x48, 0xf4) == 0, "48 outside 64-bit mode is DEC EAX, not a prefix");
    CHECK(LEN(SVM_EXIT_HLT, false, 0x0f, 0xa2) == 0, "a HLT exit at a CPUID");
    CHECK(LEN(SVM_EXIT_HLT, false, 0x66) == 0, "a prefix and nothing after it");
    /* Legacy prefixes and REX before the two-byte escape. */
    CHECK(LEN(SVM_EXIT_CPUID, false, 0x66, 0x2e, 0xf3, 0x0f, 0xa2) == 5, "CPUID after three prefixes");
    CHECK(LEN(SVM_EXIT_MSR, true, 0x3e, 0x48, 0x0f, 0x32) == 4, "RDMSR after DS and REX.W");
    CHECK(LEN(SVM_EXIT_MSR, true, 0x48, 0x3e, 0x0f, 0x32) == 0, "REX not directly before the opcode");
    /* The wrong instruction for the exit, and cut-short bytes. */
    CHECK(LEN(SVM_EXIT_CPUID, false, 0x0f, 0x32) == 0, "a CPUID exit at an RDMSR");
    CHECK(LEN(SVM_EXIT_CPUID, false, 0x0f) == 0, "CPUID cut after its escape");
    /* 15 bytes at most (APM Vol. 3 1.1): 14 prefixes + HLT is an instruction, 15 + HLT is not. */
    CHECK(LEN(SVM_EXIT_HLT, false, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66,
              0xf4) == 15, "14 prefixes + HLT");
    CHECK(LEN(SVM_EXIT_HLT, false, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66,
              0x66, 0xf4) == 0, "15 prefixes + HLT: over the limit");
    return check_summary();
}
