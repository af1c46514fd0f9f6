/*
 * EPT entries (SDM Vol. 3C 29.3.2). Every entry: bits 2:0 read/write/execute, bits 51:12 the address
 * of the next table or of the page. Leaves add the memory type in bits 5:3; levels 2 and 3 mark a
 * leaf with bit 7. Ignore-PAT (bit 6) stays 0 so the guest's PAT still combines with the EPT type the
 * way it combines with MTRRs natively (SDM Vol. 3C 29.3.7.2). Accessed/dirty (bits 8/9) start 0 and
 * are the CPU's to set when EPTP bit 6 enables them.
 *
 * STAGE2_R/W/X are EPT bits 0/1/2 by design, and MEMTYPE_* are the EPT memory-type encodings.
 */
#include <hv/vmx/ept.h>
#include <hv/vmx/vmx.h>

#define EPT_RWX_MASK     7ull
#define EPT_MEMTYPE_SHIFT 3
#define EPT_LARGE        (1ull << 7)
#define EPT_ADDR_MASK    0x000ffffffffff000ull   /* bits 51:12 */

/* Tables 29-2 (1 GiB), 29-4 (2 MiB), 29-6 (4 KiB). */
static u64 ept_leaf(u64 hpa, int level, u8 perms, u8 memtype)
{
    u64 e = (hpa & EPT_ADDR_MASK) | (perms & EPT_RWX_MASK) | ((u64)memtype << EPT_MEMTYPE_SHIFT);
    return level > 1 ? e | EPT_LARGE : e;
}

/*
 * Tables 29-1, 29-3, 29-5. Access rights are the AND of every level (SDM Vol. 3C 29.3.3.2), so
 * non-leaf entries grant all three and the leaves decide.
 */
static u64 ept_table(u64 table_hpa)
{
    return (table_hpa & EPT_ADDR_MASK) | EPT_RWX_MASK;
}

static void ept_decode(u64 e, int level, struct stage2_pte *out)
{
    /* An entry with bits 2:0 all clear is not present; the CPU ignores its other bits (29.3.2). */
    out->present = e & EPT_RWX_MASK;
    out->leaf = level == 1 || ((level == 2 || level == 3) && (e & EPT_LARGE));
    out->addr = e & EPT_ADDR_MASK;
    out->perms = (u8)(e & EPT_RWX_MASK);
    out->memtype = out->leaf ? (u8)(e >> EPT_MEMTYPE_SHIFT & 7) : 0;
}

const struct stage2_ops ept_ops = {
    .name = "EPT",
    .leaf = ept_leaf,
    .table = ept_table,
    .decode = ept_decode,
};

/* EPTP (SDM Vol. 3C 25.6.11): bits 2:0 memory type WB, 5:3 walk length - 1, bit 6 A/D enable. */
u64 ept_eptp(u64 pml4_hpa, bool ad)
{
    return (pml4_hpa & EPT_ADDR_MASK) | MEMTYPE_WB | (3ull << 3) | (ad ? 1ull << 6 : 0);
}

u32 ept_page_sizes(u64 ept_vpid_cap)
{
    return (ept_vpid_cap & EPT_CAP_2M ? STAGE2_SIZE_2M : 0) | (ept_vpid_cap & EPT_CAP_1G ? STAGE2_SIZE_1G : 0);
}
