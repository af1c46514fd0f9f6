/*
 * Emulation of a guest instruction that accessed a trapped MMIO page (the xAPIC page, mapped
 * read-only in the stage-2 map so stores fault).
 *
 * mmio_decode() decodes one instruction from its bytes (SDM Vol. 2A 2.1 instruction format; opcode
 * map Vol. 2D Appendix A, Tables A-2 one-byte, A-3 two-byte, A-6 groups): legacy prefixes (66, 67,
 * F0, F2/F3, segment overrides), REX in 64-bit mode, 16-bit and 32/64-bit ModRM/SIB/displacement
 * addressing (Tables 2-1, 2-2, 2-3), RIP-relative addressing (2.2.1.6), moffs, immediates. Only the
 * instructions listed in enum mmio_op with a memory operand decode; anything else (or more than 15
 * bytes, or fewer bytes than the encoding needs) is rejected, never guessed.
 *
 * mmio_emulate() fetches the instruction at CS:RIP through the guest's paging, decodes it, performs
 * it against the device for the trapped page (and guest RAM for the other operand of MOVS), updates
 * registers, RFLAGS and RIP through the vcpu (vcpu.h).
 */
#ifndef HV_MMIO_H
#define HV_MMIO_H

#include <hv/vcpu.h>

#define MMIO_INSN_MAX 15        /* SDM Vol. 2A 2.3.11: an instruction is at most 15 bytes */

enum mmio_op {
    MMIO_MOV_STORE,     /* 88 89 C6/0 C7/0 A2 A3: mem <- reg / imm */
    MMIO_MOV_LOAD,      /* 8A 8B A0 A1: reg <- mem */
    MMIO_MOVZX,         /* 0F B6 / 0F B7: reg <- zero-extended mem (src_size) */
    MMIO_MOVSX,         /* 0F BE / 0F BF: reg <- sign-extended mem (src_size) */
    MMIO_ALU_STORE,     /* 00-39 (op r/m, reg), 80 81 82 83 group 1: mem = mem OP reg/imm ('alu') */
    MMIO_ALU_LOAD,      /* 02-3B (op reg, r/m): reg = reg OP mem */
    MMIO_TEST,          /* 84 85, F6/0 F7/0: flags of mem AND reg/imm */
    MMIO_XCHG,          /* 86 87 */
    MMIO_XADD,          /* 0F C0 / 0F C1 */
    MMIO_CMPXCHG,       /* 0F B0 / 0F B1 */
    MMIO_BT,            /* 0F A3 AB B3 BB, 0F BA /4-/7: 'alu' is the MMIO_BIT_* kind */
    MMIO_UNARY,         /* FE/FF /0 INC, /1 DEC, F6/F7 /2 NOT, /3 NEG: 'alu' is the MMIO_UN_* kind */
    MMIO_STOS,          /* AA AB (with REP) */
    MMIO_LODS,          /* AC AD (with REP) */
    MMIO_MOVS,          /* A4 A5 (with REP) */
};

/* 'alu' of MMIO_ALU_*: the /digit of group 1 and bits 5:3 of opcodes 00-3F (Table ). */
enum mmio_alu { MMIO_ADD, MMIO_OR, MMIO_ADC, MMIO_SBB, MMIO_AND, MMIO_SUB, MMIO_XOR, MMIO_CMP };
/* 'alu' of MMIO_BT: the /digit of group 8 (0F BA /4-/7, Table A-6). */
enum mmio_bit { MMIO_BIT_BT = 4, MMIO_BIT_BTS, MMIO_BIT_BTR, MMIO_BIT_BTC };
/* 'alu' of MMIO_UNARY. */
enum mmio_unary { MMIO_UN_INC, MMIO_UN_DEC, MMIO_UN_NOT, MMIO_UN_NEG };

struct mmio_insn {
    u32 len;            /* of the whole instruction */
    u8 op;              /* enum mmio_op */
    u8 alu;             /* enum mmio_alu / mmio_bit / mmio_unary */
    u8 size;            /* operand size in bytes: 1, 2, 4, 8 */
    u8 src_size;        /* MOVZX / MOVSX: size of the memory operand */
    u8 addr_bits;       /* effective address size: 16, 32, 64 */
    u8 seg;             /* enum vcpu_seg of the memory operand (MOVS: of the source; ES:rDI for the destination) */
    bool lock;          /* F0 */
    bool rep;           /* F3 or F2 on a string instruction */
    bool has_reg;       /* 'reg' is an operand */
    u8 reg;             /* 0-15, struct guest_regs order; with high8, 4-7 are AH CH DH BH */
    bool high8;
    bool has_imm;
    u64 imm;            /* sign-extended to the operand size, masked to it */
    bool rip_relative;
    u64 ea;             /* effective address (offset in 'seg'), truncated to addr_bits; string ops: rSI / rDI */
};

/*
 * Decode the 'avail' bytes at 'insn' (the instruction at the vcpu's RIP) for a CPU running
 * 'code_bits' (16, 32, 64) code; the effective address uses v's registers and RIP. False if the
 * instruction is not one of the above with a memory operand, or needs more than 'avail' bytes.
 */
bool mmio_decode(const u8 *insn, u32 avail, u32 code_bits, struct vcpu *v, struct mmio_insn *out);

/*
 * The device behind the trapped page. Offsets are from 'base'; size is 1, 2, 4 or 8 and the access lies
 * within [base, base + length). read/write return false if the device refuses the access: the
 * emulation then stops there (MMIO_EMUL_UNSUPPORTED).
 */
struct mmio_dev {
    u64 base, length;           /* guest-physical */
    void *ctx;
    bool (*read)(void *ctx, u32 offset, u32 size, u64 *value);
    bool (*write)(void *ctx, u32 offset, u32 size, u64 value);
};

/*
 * Helpers for a device of 32-bit registers at 16-byte aligned offsets, like the xAPIC (SDM Vol. 3A
 * 11.4.1, Table 11-1), where only aligned 32-bit accesses are defined. The other accesses are made
 * harmless:
 *   read:  each byte comes from the register it lies in (read32 of the 16-byte aligned offset, once per
 *          register); bytes 4-15 of a 16-byte slot are reserved and read as 0. So a 1/2-byte read of a
 *          register returns those bytes of it, an 8-byte read the register zero-extended.
 *   write: only a 4- or 8-byte write at a 16-byte aligned offset reaches the register, with its low 32
 *          bits (the high half of an 8-byte write falls on reserved bytes); any other write (1/2 bytes,
 *          misaligned, into reserved bytes) is dropped: merging a partial write into a register could
 *          trigger a side effect the guest never asked for (e.g. an IPI through the ICR).
 */
u64 mmio_reg32_read(u32 offset, u32 size, u32 (*read32)(void *ctx, u32 reg), void *ctx);
/* True if a write of 'size' bytes at 'offset' goes to the register at 'offset' (with the low 32 bits). */
bool mmio_reg32_write_reaches(u32 offset, u32 size);

enum mmio_status {
    MMIO_EMUL_DONE,             /* performed; RIP stepped (or left on a REP string op with iterations to go) */
    MMIO_EMUL_UNDECODABLE,      /* not an instruction the decoder knows: nothing done, use the fallback */
    MMIO_EMUL_UNSUPPORTED,      /* decoded, but an operand is not in the device or guest RAM (or the device refused) */
    MMIO_EMUL_FAULT,            /* reflect 'fault' to the guest (nothing else was changed, RIP not stepped) */
};

struct mmio_fault {
    u8 vector;                  /* VEC_GP, VEC_PF, VEC_UD */
    bool has_error;
    u32 error;
    u64 cr2;                    /* #PF: the linear address */
};

/* What mmio_emulate did, for tracing. */
struct mmio_result {
    struct mmio_insn insn;      /* valid from MMIO_EMUL_UNSUPPORTED on */
    u8 bytes[MMIO_INSN_MAX];    /* the fetched instruction bytes ('fetched' of them) */
    u32 fetched;
    struct mmio_fault fault;    /* MMIO_EMUL_FAULT */
    u32 dev_offset;             /* the last device access: offset, value, whether it was a write */
    u64 dev_value;
    bool dev_write;
    u32 iterations;             /* string ops: iterations performed */
};

/*
 * Emulate the instruction at the vcpu's CS:RIP that accessed guest-physical 'gpa' in 'dev'. The
 * instruction's memory operand must translate (guest paging) into dev, else nothing is done and
 * MMIO_EMUL_UNSUPPORTED is returned.
 */
enum mmio_status mmio_emulate(struct vcpu *v, u64 gpa, const struct mmio_dev *dev, struct mmio_result *res);

#endif
