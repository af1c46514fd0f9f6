/* Guest linear-address reads and guest-RAM accesses: see guest_mem.h. */
#include <hv/guest.h>
#include <hv/guest_mem.h>
#include <hv/memmap.h>
#include <hv/percpu.h>
#include <hv/x86.h>

#define PG_P  (1ull << 0)
#define PG_PS (1ull << 7)
#define ADDR_MASK 0x000ffffffffff000ull

/* Guest-physical RAM the hypervisor may read on the guest's behalf: usable or ACPI, not its own. */
static bool readable(u64 gpa, u64 len)
{
    if (guest_gpa_is_hv(gpa) || guest_gpa_is_hv(gpa + len - 1))
        return false;
    for (u32 i = 0; i < hv_memmap.count; i++) {
        const struct mem_range *r = &hv_memmap.range[i];
        if (gpa >= r->base && gpa + len <= r->base + r->length)
            return r->type == MEM_USABLE || r->type == MEM_ACPI_RECLAIM || r->type == MEM_ACPI_NVS;
    }
    return false;
}

/*
 * The host's page tables (boot/entry.S) identity-map only the low 4 GiB, but guest RAM (and so guest
 * page tables and code) may lie anywhere below MAXPHYADDR. RAM above 4 GiB is reached through a window
 * per CPU: PML4[0] -> PDPT[4] -> window_pd, whose entry i maps one 2 MiB block for CPU i at linear
 * 4 GiB + i * 2 MiB (PAE-style 2 MiB page, SDM Vol. 3A 4.5.4). Only the CPU itself uses its entry, so
 * one INVLPG on that CPU retires the old block (SDM 4.10.4.1); the PDPT entry goes from not present to
 * present once, which needs no invalidation (4.10.4.3: not-present entries are not cached).
 */
#define HIGH_WINDOW_BASE (4ull << 30)
#define BLOCK_2M (2ull << 20)
#define PTE_FLAGS_P_W (PG_P | (1ull << 1))
extern u64 boot_pdpt[];
static u64 window_pd[512] __attribute__((aligned(4096)));

static void *phys_ptr(u64 gpa)
{
    if (gpa < HIGH_WINDOW_BASE)
        return (void *)(uintptr_t)gpa;              /* the boot identity map */
    if (!__atomic_load_n(&boot_pdpt[4], __ATOMIC_ACQUIRE))
        __atomic_store_n(&boot_pdpt[4], (u64)(uintptr_t)window_pd | PTE_FLAGS_P_W, __ATOMIC_RELEASE);
    u32 cpu = this_cpu()->index;
    u64 block = gpa & ~(BLOCK_2M - 1), entry = block | PTE_FLAGS_P_W | PG_PS;
    u64 window = HIGH_WINDOW_BASE + (u64)cpu * BLOCK_2M;
    if (window_pd[cpu] != entry) {
        window_pd[cpu] = entry;
        __asm__ volatile("invlpg (%0)" : : "r"(window) : "memory");
    }
    return (void *)(uintptr_t)(window + (gpa - block));
}

/* Copy to / from guest RAM known readable, in pieces that do not cross a 2 MiB block (one window). */
static void phys_copy(u64 gpa, u8 *buf, u32 len, bool write)
{
    while (len) {
        u32 chunk = (u32)(BLOCK_2M - (gpa & (BLOCK_2M - 1)));
        if (chunk > len)
            chunk = len;
        void *p = phys_ptr(gpa);
        if (write)
            memcpy(p, buf, chunk);
        else
            memcpy(buf, p, chunk);
        gpa += chunk;
        buf += chunk;
        len -= chunk;
    }
}

/*
 * The paging-structure entries one translation read, in order: what guest_code_bytes() reads again to
 * prove a cached translation still holds (struct code_cache keeps them by width). 'cacheable' is
 * cleared by an entry above the identity map (its window pointer does not last).
 */
struct walk_log {
    u32 n;
    bool cacheable;
    const volatile void *entry[CODE_WALK_MAX];
    u64 value[CODE_WALK_MAX];
    bool wide[CODE_WALK_MAX];
};

static bool read_entry(u64 gpa, bool wide, u64 *out, struct walk_log *log)
{
    if (!readable(gpa, wide ? 8 : 4))
        return false;
    /* aligned entries never cross a 2 MiB block */
    const volatile void *p = phys_ptr(gpa);
    *out = wide ? *(const volatile u64 *)p : *(const volatile u32 *)p;
    if (log && log->n < CODE_WALK_MAX) {
        log->entry[log->n] = p;
        log->value[log->n] = *out;
        log->wide[log->n++] = wide;
        log->cacheable &= gpa < HIGH_WINDOW_BASE;
    }
    return true;
}

/* Linear -> guest-physical through the guest's paging mode; false if not mapped. */
static bool translate(const struct guest_paging *p, u64 la, u64 *gpa, struct walk_log *log)
{
    if (!(p->cr0 & X86_CR0_PG)) {
        *gpa = (p->efer & X86_EFER_LMA) ? la : (u32)la;
        return true;
    }
    u64 e;
    if (p->efer & X86_EFER_LMA) {
        /* 4-level (or 5-level with CR4.LA57) paging: 9 bits per level from bit 39 (48) down */
        int levels = (p->cr4 & X86_CR4_LA57) ? 5 : 4;
        u64 table = p->cr3 & ADDR_MASK;
        for (int level = levels; level >= 1; level--) {
            u32 shift = 12 + 9 * (u32)(level - 1);
            if (!read_entry(table + ((la >> shift) & 511) * 8, true, &e, log) || !(e & PG_P))
                return false;
            if (level == 1 || ((level == 2 || level == 3) && (e & PG_PS))) {
                u64 size = 1ull << shift;
                *gpa = (e & ADDR_MASK & ~(size - 1)) | (la & (size - 1));
                return true;
            }
            table = e & ADDR_MASK;
        }
        return false;
    }
    la = (u32)la;
    if (p->cr4 & X86_CR4_PAE) {
        /* PAE: 4 PDPTEs at CR3[31:5], then 2-level 8-byte tables (SDM 4.4) */
        if (!read_entry((p->cr3 & 0xffffffe0ull) + (la >> 30) * 8, true, &e, log) || !(e & PG_P))
            return false;
        if (!read_entry((e & ADDR_MASK) + ((la >> 21) & 511) * 8, true, &e, log) || !(e & PG_P))
            return false;
        if (e & PG_PS) {
            *gpa = (e & ADDR_MASK & ~0x1fffffull) | (la & 0x1fffff);
            return true;
        }
        if (!read_entry((e & ADDR_MASK) + ((la >> 12) & 511) * 8, true, &e, log) || !(e & PG_P))
            return false;
        *gpa = (e & ADDR_MASK) | (la & 0xfff);
        return true;
    }
    /* 32-bit paging: 4-byte entries, 4 MiB pages with CR4.PSE (SDM 4.3; PSE-36 bits ignored) */
    if (!read_entry((p->cr3 & 0xfffff000ull) + (la >> 22) * 4, false, &e, log) || !(e & PG_P))
        return false;
    if ((e & PG_PS) && (p->cr4 & X86_CR4_PSE)) {
        *gpa = (e & 0xffc00000ull) | (la & 0x3fffff);
        return true;
    }
    if (!read_entry((e & 0xfffff000ull) + ((la >> 12) & 1023) * 4, false, &e, log) || !(e & PG_P))
        return false;
    *gpa = (e & 0xfffff000ull) | (la & 0xfff);
    return true;
}

/*
 * Copy between guest linear memory and 'buf', page by page. A first pass translates every page, so
 * that a write that cannot complete changes nothing (as a faulting store).
 */
static bool copy_linear(const struct guest_paging *p, u64 linear, u8 *buf, u32 len, bool write)
{
    for (int pass = write ? 0 : 1; pass < 2; pass++) {     /* reads need no dry run */
        u64 la = linear;
        u8 *at_buf = buf;
        for (u32 left = len; left;) {
            u64 gpa;
            u32 chunk = PAGE_SIZE - (u32)(la & (PAGE_SIZE - 1));
            if (chunk > left)
                chunk = left;
            if (!translate(p, la, &gpa, NULL) || !readable(gpa, chunk))
                return false;
            if (pass)
                phys_copy(gpa, at_buf, chunk, write);
            at_buf += chunk;
            la += chunk;
            left -= chunk;
        }
    }
    return true;
}

bool guest_read_linear(const struct guest_paging *p, u64 linear, void *out, u32 len)
{
    return copy_linear(p, linear, out, len, false);
}

bool guest_write_linear(const struct guest_paging *p, u64 linear, const void *in, u32 len)
{
    return copy_linear(p, linear, (u8 *)(uintptr_t)in, len, true);
}

bool guest_translate(const struct guest_paging *p, u64 linear, u64 *gpa)
{
    return translate(p, linear, gpa, NULL);
}

/* Every CPU's starts empty: page 1 is no page address (code_cache.page). */
struct code_cache guest_code_cache[HV_MAX_CPUS] = { [0 ... HV_MAX_CPUS - 1] = { .page = 1 } };
const volatile u64 code_entry_unused;

const u8 *guest_code_walk(struct code_cache *c, u64 cr0, u64 cr3, u64 cr4, u64 efer, u64 page)
{
    struct guest_paging p = { cr0, cr3, cr4, efer };
    struct walk_log log = { .cacheable = true };
    u64 gpa;
    c->page = 1;
    if (!translate(&p, page, &gpa, &log) || !log.cacheable || gpa >= HIGH_WINDOW_BASE || !readable(gpa, PAGE_SIZE))
        return 0;
    c->wide = c->narrow = 0;
    for (u32 i = 0; i < CODE_WIDE_CHECKED; i++)
        c->e64[i] = (struct code_entry64){ &code_entry_unused, 0 };
    for (u32 i = 0; i < log.n; i++) {
        if (log.wide[i])
            c->e64[c->wide++] = (struct code_entry64){ log.entry[i], log.value[i] };
        else
            c->e32[c->narrow++] = (struct code_entry32){ log.entry[i], (u32)log.value[i] };
    }
    c->more = c->wide > CODE_WIDE_CHECKED || c->narrow;
    c->key = p;
    c->bytes = (const u8 *)(uintptr_t)gpa;          /* the identity map */
    c->page = page;
    return c->bytes;
}

bool guest_read_phys(u64 gpa, void *out, u32 len)
{
    if (!len || !readable(gpa, len))
        return false;
    phys_copy(gpa, out, len, false);
    return true;
}

bool guest_write_phys(u64 gpa, const void *in, u32 len)
{
    /* the same RAM a read may touch: never the hypervisor's own, never MMIO or holes */
    if (!len || !readable(gpa, len))
        return false;
    phys_copy(gpa, (u8 *)(uintptr_t)in, len, true);
    return true;
}
