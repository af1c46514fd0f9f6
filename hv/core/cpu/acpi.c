/*
 * Processor enumeration from ACPI: find the RSDP (ACPI 6.4 5.2.5.1: first KiB of the EBDA, then
 * 0xE0000-0xFFFFF on 16-byte boundaries), follow the XSDT (revision >= 2) or RSDT to the MADT
 * (signature "APIC", 5.2.12) and collect every enabled Processor Local APIC (type 0) and Processor
 * Local x2APIC (type 9) entry. Every table's checksum is verified.
 */
#include <hv/abi.h>
#include <hv/acpi.h>
#include <hv/console.h>
#include <hv/panic.h>
#include <hv/x86.h>

struct rsdp {
    char signature[8];
    u8 checksum;
    char oem_id[6];
    u8 revision;
    u32 rsdt;
    u32 length;         /* revision >= 2 from here */
    u64 xsdt;
    u8 ext_checksum;
    u8 reserved[3];
} __packed;

struct sdt_header {
    char signature[4];
    u32 length;
    u8 revision;
    u8 checksum;
    char oem_id[6];
    char oem_table_id[8];
    u32 oem_revision;
    u32 creator_id;
    u32 creator_revision;
} __packed;

struct madt {
    struct sdt_header h;
    u32 lapic_addr;
    u32 flags;
} __packed;

#define MADT_LAPIC          0
#define MADT_LAPIC_OVERRIDE 5
#define MADT_X2APIC         9
#define MADT_ENABLED        (1u << 0)

static bool checksum_ok(const void *p, u64 len)
{
    u8 sum = 0;
    for (u64 i = 0; i < len; i++)
        sum += ((const u8 *)p)[i];
    return sum == 0;
}

static const struct rsdp *scan_rsdp(u64 start, u64 len)
{
    for (u64 p = start; p + sizeof(struct rsdp) <= start + len; p += 16) {
        const struct rsdp *r = (const void *)p;
        if (memcmp(r->signature, "RSD PTR ", 8) || !checksum_ok(r, 20))
            continue;
        if (r->revision >= 2 && !checksum_ok(r, r->length))
            continue;
        return r;
    }
    return NULL;
}

static const struct rsdp *find_rsdp(void)
{
    u64 ebda = (u64)*(volatile u16 *)phys(0x40e) << 4;
    const struct rsdp *r = NULL;
    if (ebda >= 0x80000 && ebda < 0xa0000)
        r = scan_rsdp(ebda, 1024);
    return r ? r : scan_rsdp(0xe0000, 0x20000);
}

static const struct sdt_header *find_table(const struct rsdp *rsdp, const char sig[4])
{
    bool x = rsdp->revision >= 2 && rsdp->xsdt;
    const struct sdt_header *root = (const void *)(x ? rsdp->xsdt : (u64)rsdp->rsdt);
    if (!checksum_ok(root, root->length))
        hv_fail(HV_STATUS_NO_ACPI, "no_acpi", "ACPI %s at %p has a bad checksum", x ? "XSDT" : "RSDT", root);
    u32 n = (root->length - (u32)sizeof(*root)) / (x ? 8 : 4);
    const u8 *entries = (const u8 *)(root + 1);
    for (u32 i = 0; i < n; i++) {
        u64 addr = x ? *(const u64 *)(entries + 8 * i) : *(const u32 *)(entries + 4 * i);
        const struct sdt_header *t = (const void *)addr;
        if (!memcmp(t->signature, sig, 4) && checksum_ok(t, t->length))
            return t;
    }
    return NULL;
}

static void add_cpu(struct acpi_cpus *out, u32 apic_id)
{
    if (out->count == HV_MAX_CPUS)
        hv_fail(HV_STATUS_TOO_MANY_CPUS, "too_many_cpus", "the MADT lists more than %u enabled processors",
                HV_MAX_CPUS);
    for (u32 i = 0; i < out->count; i++)
        if (out->apic_id[i] == apic_id)     /* firmware may list a CPU as both LAPIC and x2APIC */
            return;
    out->apic_id[out->count++] = apic_id;
}

void acpi_find_cpus(struct acpi_cpus *out)
{
    const struct rsdp *rsdp = find_rsdp();
    if (!rsdp)
        hv_fail(HV_STATUS_NO_ACPI, "no_acpi", "no ACPI RSDP in the EBDA or the BIOS area");
    const struct madt *madt = (const void *)find_table(rsdp, "APIC");
    if (!madt)
        hv_fail(HV_STATUS_NO_ACPI, "no_acpi", "no valid MADT (\"APIC\") in the ACPI %s", rsdp->revision >= 2 ? "XSDT" : "RSDT");
    out->count = 0;
    out->lapic_base = madt->lapic_addr;
    const u8 *p = (const u8 *)(madt + 1), *end = (const u8 *)madt + madt->h.length;
    while (p + 2 <= end && p[1] >= 2 && p + p[1] <= end) {
        u8 type = p[0];
        if (type == MADT_LAPIC && (*(const u32 *)(p + 4) & MADT_ENABLED))
            add_cpu(out, p[3]);
        else if (type == MADT_X2APIC && (*(const u32 *)(p + 8) & MADT_ENABLED))
            add_cpu(out, *(const u32 *)(p + 4));
        else if (type == MADT_LAPIC_OVERRIDE)
            out->lapic_base = *(const u64 *)(p + 4);
        p += p[1];
    }
    printk("ACPI: RSDP rev %u at %p, MADT at %p: %u enabled processors, local APIC at 0x%lx\n", rsdp->revision,
           rsdp, madt, out->count, out->lapic_base);
    if (!out->count)
        hv_fail(HV_STATUS_NO_ACPI, "no_acpi", "the MADT lists no enabled processor");
}

/* A 32-bit I/O port address in the FADT ("FACP", ACPI 6.4 5.2.9) at 'offset', 0 if none. */
static u16 fadt_port(u32 offset)
{
    const struct rsdp *rsdp = find_rsdp();
    const struct sdt_header *fadt = rsdp ? find_table(rsdp, "FACP") : NULL;
    if (!fadt || fadt->length < offset + 4)
        return 0;
    u32 port = *(const u32 *)((const u8 *)fadt + offset);
    return port <= 0xfffe ? (u16)port : 0;
}

u16 acpi_pm1a_cnt_port(void)
{
    return fadt_port(64);   /* PM1a_CNT_BLK */
}

u16 acpi_smi_cmd_port(void)
{
    return fadt_port(48);   /* SMI_CMD */
}
