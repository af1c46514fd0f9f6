/* Decoding the guest store that wrote an emulated MMIO register (apic_emul.h). */
#include <hv/apic_emul.h>

bool mmio_decode_store(const u8 *p, bool long_mode, struct mmio_store *out)
{
    u32 at = 0;
    u8 rex = 0;
    if (long_mode && (p[at] & 0xf0) == 0x40)
        rex = p[at++];
    u8 op = p[at++];
    if (op != 0x89 && op != 0xc7)
        return false;
    u8 modrm = p[at++];
    u32 mod = modrm >> 6, reg = (modrm >> 3) & 7, rm = modrm & 7;
    if (mod == 3 || (op == 0xc7 && reg != 0))
        return false;           /* a register destination is no memory store; C7 /1-/7 are not MOV */
    if (rm == 4) {
        u8 sib = p[at++];
        if (mod == 0 && (sib & 7) == 5)
            at += 4;            /* [index*scale + disp32] */
    } else if (mod == 0 && rm == 5) {
        at += 4;                /* disp32 (RIP-relative in 64-bit mode) */
    }
    at += mod == 1 ? 1 : mod == 2 ? 4 : 0;
    out->imm = op == 0xc7;
    out->reg = reg | (rex & 4 ? 8 : 0);
    if (out->imm) {
        out->value = (u32)p[at] | (u32)p[at + 1] << 8 | (u32)p[at + 2] << 16 | (u32)p[at + 3] << 24;
        at += 4;
    }
    out->len = at;
    return true;
}
