/*
 * gdb's hardware breakpoints and watchpoints as the four x86 debug-register slots (SDM Vol. 3B 18.2.4,
 * Figure 18-1 "Debug Registers"). No hardware access here: the target loads DR0-DR3 and DR7 from the
 * slots (core/gdbstub/debugregs.c; the host-side test's fake target only records them).
 *   Z1 (execution)   R/W 00, LEN 00 (an instruction breakpoint's length must be 1 byte)
 *   Z2 (write)       R/W 01, LEN of 1, 2, 4 or 8 bytes, the address aligned to it (18.2.5)
 *   Z4 (access)      R/W 11 (read or write)
 *   Z3 (read only)   no such form on x86: not supported
 */
#include <hv/gdb_stub.h>

#define EINVAL 22
#define ENOSPC 28
#define ENOENT 2

static bool same(const struct gdb_hw_slots *h, u32 i, u32 type, u64 addr, u64 len)
{
    return h->type[i] == type && h->addr[i] == addr && h->len[i] == len;
}

int gdb_hw_insert(struct gdb_hw_slots *h, u32 type, u64 addr, u64 len)
{
    if (type == GDB_HW_READ || type < GDB_HW_EXEC || type > GDB_HW_ACCESS)
        return -1;
    if (type == GDB_HW_EXEC)
        len = 1;                            /* gdb's kind for x86 is the int3's length: 1 */
    if ((len != 1 && len != 2 && len != 4 && len != 8) || (addr & (len - 1)))
        return EINVAL;
    for (u32 i = 0; i < GDB_HW_SLOTS; i++)
        if (same(h, i, type, addr, len))
            return 0;                       /* inserted already: gdb may re-send after a reconnect */
    for (u32 i = 0; i < GDB_HW_SLOTS; i++) {
        if (!h->type[i]) {
            h->addr[i] = addr;
            h->type[i] = (u8)type;
            h->len[i] = (u8)len;
            return 0;
        }
    }
    return ENOSPC;
}

int gdb_hw_remove(struct gdb_hw_slots *h, u32 type, u64 addr, u64 len)
{
    if (type == GDB_HW_EXEC)
        len = 1;
    for (u32 i = 0; i < GDB_HW_SLOTS; i++) {
        if (h->type[i] && same(h, i, type, addr, len)) {
            h->type[i] = 0;
            h->addr[i] = 0;                 /* a free slot's DRn holds 0 */
            return 0;
        }
    }
    return ENOENT;
}

u64 gdb_hw_dr7(const struct gdb_hw_slots *h)
{
    static const u8 rw[] = { [GDB_HW_EXEC] = 0, [GDB_HW_WRITE] = 1, [GDB_HW_ACCESS] = 3 };
    static const u8 len_bits[9] = { [1] = 0, [2] = 1, [4] = 3, [8] = 2 };      /* LEN 10b: 8 bytes */
    u64 dr7 = 1ull << 10;
    for (u32 i = 0; i < GDB_HW_SLOTS; i++) {
        if (!h->type[i])
            continue;
        dr7 |= 2ull << (2 * i);                                     /* Gn: global, survives task switches */
        dr7 |= (u64)(rw[h->type[i]] | len_bits[h->len[i]] << 2) << (16 + 4 * i);
    }
    return dr7;
}
