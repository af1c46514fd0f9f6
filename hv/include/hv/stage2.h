/*
 * Stage-2 translation (Intel EPT / AMD NPT), vendor-neutral: the identity map guest-physical =
 * host-physical built from the memory map and the MTRRs, large-page splitting, permission changes
 * and walks. The entry format comes from a vendor's struct stage2_ops (vmx/ept.c, svm/npt.c).
 *
 * Levels count like the paging structures: 4 = PML4, 3 = PDPT (1 GiB leaves), 2 = PD (2 MiB
 * leaves), 1 = PT (4 KiB leaves). Tables are 4 KiB pages whose address is their physical address.
 *
 * Nothing here flushes: after stage2_split() or stage2_protect() on live tables the caller must
 * invalidate cached translations on every CPU using them (INVEPT single-context, SDM Vol. 3C 29.4.3;
 * on AMD a TLB flush through the VMCB TLB_CONTROL field, APM Vol. 2 15.16). Entries are replaced with
 * single 64-bit stores, so a concurrent hardware walk sees the old or the new mapping, never a mix.
 */
#ifndef HV_STAGE2_H
#define HV_STAGE2_H

#include <hv/memmap.h>
#include <hv/mtrr.h>

#define STAGE2_R   1
#define STAGE2_W   2
#define STAGE2_X   4
#define STAGE2_RWX (STAGE2_R | STAGE2_W | STAGE2_X)

/* Large leaf sizes the CPU supports, as flags (1u << level), for struct stage2.page_sizes. */
#define STAGE2_SIZE_2M (1u << 2)
#define STAGE2_SIZE_1G (1u << 3)

#define STAGE2_LEVELS 4

/* One entry as decoded by the vendor. */
struct stage2_pte {
    bool present;   /* the hardware would use it (EPT: any of R/W/X; NPT: P) */
    bool leaf;      /* maps a page: always at level 1, the large-page bit at levels 2 and 3 */
    u64 addr;       /* page or next table */
    u8 perms;       /* leaf: STAGE2_R/W/X */
    u8 memtype;     /* leaf: MEMTYPE_* */
};

/*
 * The vendor plug: pure encoders, no CPU access. A leaf keeps addr/memtype even with perms 0 (not
 * present), so stage2_protect() can restore it: decode(leaf(a, l, p, t), l) gives back a, p, t except
 * where the format cannot express them (see npt.h).
 */
struct stage2_ops {
    const char *name;
    u64 (*leaf)(u64 hpa, int level, u8 perms, u8 memtype);
    u64 (*table)(u64 table_hpa);
    void (*decode)(u64 entry, int level, struct stage2_pte *out);
};

struct stage2 {
    /* Set by the caller before stage2_build_identity(). */
    const struct stage2_ops *ops;
    u32 page_sizes;                 /* STAGE2_SIZE_*: from ept_page_sizes() / npt_page_sizes() */
    void *(*alloc_page)(void *ctx); /* zeroed 4 KiB page, its address = its physical address; NULL if out */
    void *alloc_ctx;
    /* Filled in by the builder and kept current by split/protect. */
    u64 *root;                      /* PML4: the EPTP / nCR3 target */
    u64 top;                        /* [0, top) is mapped */
    u64 leaves[STAGE2_LEVELS];      /* leaves per level (index 1..3; [0] unused) */
    u64 tables;                     /* table pages, root included */
};

/* What a walk found: raw entries from the root down to the leaf. */
struct stage2_walk {
    u64 entry[STAGE2_LEVELS + 1];   /* entry[4] = PML4E ... entry[level] = leaf; 0 below the leaf */
    int level;                      /* leaf level: 1 = 4 KiB, 2 = 2 MiB, 3 = 1 GiB */
    u64 page_size;
    u64 hpa;                        /* translation of the walked gpa */
    u8 perms;                       /* 0 = no access (entry not present) */
    u8 memtype;
};

/*
 * Identity-map [0, top), top = max(4 GiB, end of the highest memory-map range) rounded up to 1 GiB,
 * all RWX. RAM (usable, ACPI reclaim, ACPI NVS) gets its MTRR type, WB when MTRRs are disabled; all
 * else (reserved, holes, MMIO) is UC. A page only partly RAM counts as not RAM. Largest leaves that
 * fit a uniform type. m is sorted and disjoint (as memmap_init() leaves it); a zeroed mt means no
 * MTRRs. Returns 0, or -1 when alloc_page fails.
 */
int stage2_build_identity(struct stage2 *s, const struct memmap *m, const struct mtrr_state *mt);
/* Split the leaf covering gpa down to to_level (1..3), every sub-page keeping type and perms. 0 / -1. */
int stage2_split(struct stage2 *s, u64 gpa, int to_level);
/*
 * Set perms on [gpa, gpa+len) (4 KiB aligned, inside [0, top)), splitting only leaves that straddle
 * its ends. W without R is refused (an EPT misconfiguration, SDM Vol. 3C 29.3.3.1). 0 / -1.
 */
int stage2_protect(struct stage2 *s, u64 gpa, u64 len, u8 perms);
/*
 * Give every present leaf the type the builder would give it under mt (a guest's MTRRs, SDM Vol. 3A
 * 13.11: with EPT the processor takes the EPT memory type instead of the MTRRs, SDM Vol. 3C 29.3.7.2,
 * so the guest's MTRRs reach the hardware only this way). A leaf whose range mixes types becomes UC;
 * not-present leaves are left alone. Returns how many leaves changed; the caller flushes.
 */
u64 stage2_retype(struct stage2 *s, const struct memmap *m, const struct mtrr_state *mt);
/* Walk gpa: 0 with *out filled, or -1 when gpa is not mapped. */
int stage2_walk(const struct stage2 *s, u64 gpa, struct stage2_walk *out);
void stage2_print_summary(const struct stage2 *s);

/* Point the 4 KiB leaf of gpa at hpa with perms (the memory type stays). 0, or -1 if no 4 KiB leaf. */
int stage2_remap(struct stage2 *s, u64 gpa, u64 hpa, u8 perms);

/*
 * Identity-map the block holding gpa >= top (a 64-bit PCI BAR above RAM) UC and RWX, with the largest
 * leaf the CPU supports, taking at most *tables_left new tables (decremented). 0 / -1.
 */
int stage2_map_above(struct stage2 *s, u64 gpa, u32 *tables_left);

/*
 * Demand mapping of memory-map holes (stage2_holes.c): unmap every gap between ranges below top
 * (returns how many, or -1), and map the 4 KiB hole page holding gpa (false if gpa is no hole).
 */
int stage2_unmap_holes(struct stage2 *s, const struct memmap *m);

/*
 * Build the identity map from hv_memmap and this CPU's MTRRs with the vendor's encoder, print its
 * summary, unmap the holes and publish the root in the discovery header (core/mem/stage2_setup.c).
 */
bool stage2_setup_identity(struct stage2 *s, const struct stage2_ops *ops, u32 page_sizes);
bool stage2_map_hole(struct stage2 *s, const struct memmap *m, u64 gpa);

#endif
