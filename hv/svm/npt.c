/*
 * NPT entries (AMD APM Vol. 2 15.25): long-mode page-table entries (APM Vol. 2 5.3). The nested walk
 * treats every access as a user access (15.25.5), so P, R/W and U/S are set on every level and the
 * leaf alone restricts: R/W clear for no write, NX (bit 63) for no execute (15.25.7).
 *
 * Memory type: PAT index = PAT*4 + PCD*2 + PWT into the host PAT MSR (APM Vol. 2 7.8.1), which
 * applies to the nested tables while the VMCB's G_PAT serves the guest's own (15.25.8). The PAT bit
 * is bit 7 in a 4 KiB PTE but bit 12 in a 2 MiB / 1 GiB entry, where bit 7 is PS. See npt.h for the
 * WC/WP and permission limits.
 */
#include <hv/svm/npt.h>

#define NPT_P         (1ull << 0)
#define NPT_RW        (1ull << 1)
#define NPT_US        (1ull << 2)
#define NPT_PWT       (1ull << 3)
#define NPT_PCD       (1ull << 4)
#define NPT_PS        (1ull << 7)
#define NPT_PAT_LARGE (1ull << 12)    /* in a 4 KiB PTE the PAT bit is bit 7 */
#define NPT_NX        (1ull << 63)
#define NPT_ADDR_MASK 0x000ffffffffff000ull   /* bits 51:12 */

#define CPUID_80000001_EDX_PAGE1GB (1u << 26)

/*
 * The host PAT at power-on (APM Vol. 2 7.8.1) by PCD*2 + PWT; UC- reported as UC. PA4..PA7 repeat
 * PA0..PA3, so the PAT bit never changes the type and the decoder ignores it.
 */
static const u8 default_pat[4] = { MEMTYPE_WB, MEMTYPE_WT, MEMTYPE_UC, MEMTYPE_UC };

static u64 npt_leaf(u64 hpa, int level, u8 perms, u8 memtype)
{
    u64 e = (hpa & NPT_ADDR_MASK) | NPT_US;
    if (perms)
        e |= NPT_P;
    if (perms & STAGE2_W)
        e |= NPT_RW;
    if (!(perms & STAGE2_X))
        e |= NPT_NX;
    if (level > 1)
        e |= NPT_PS;
    /* PAT index 0 = WB, 1 = WT, 3 = UC; the PAT bit stays 0, so its position never matters here. */
    if (memtype == MEMTYPE_WT)
        e |= NPT_PWT;
    else if (memtype != MEMTYPE_WB)
        e |= NPT_PWT | NPT_PCD;
    return e;
}

static u64 npt_table(u64 table_hpa)
{
    return (table_hpa & NPT_ADDR_MASK) | NPT_P | NPT_RW | NPT_US;
}

static void npt_decode(u64 e, int level, struct stage2_pte *out)
{
    out->present = e & NPT_P;
    out->leaf = level == 1 || ((level == 2 || level == 3) && (e & NPT_PS));
    out->addr = e & NPT_ADDR_MASK;
    out->perms = 0;
    out->memtype = 0;
    if (!out->leaf)
        return;
    if (level > 1)
        out->addr &= ~NPT_PAT_LARGE;
    if (out->present)
        out->perms = (u8)(STAGE2_R | (e & NPT_RW ? STAGE2_W : 0) | (e & NPT_NX ? 0 : STAGE2_X));
    out->memtype = default_pat[(e & NPT_PWT ? 1 : 0) | (e & NPT_PCD ? 2 : 0)];
}

const struct stage2_ops npt_ops = {
    .name = "NPT",
    .leaf = npt_leaf,
    .table = npt_table,
    .decode = npt_decode,
};

u32 npt_page_sizes(u32 cpuid_80000001_edx)
{
    return STAGE2_SIZE_2M | (cpuid_80000001_edx & CPUID_80000001_EDX_PAGE1GB ? STAGE2_SIZE_1G : 0);
}
