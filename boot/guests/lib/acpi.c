/* ACPI power-off for the guests (guest.h). */
#include "guest.h"

const u8 *acpi_fadt(void)
{
    /* RSDP in the BIOS area (ACPI 6.4 5.2.5.1), RSDT -> FADT ("FACP", 5.2.9) */
    for (u32 p = 0xe0000; p < 0x100000; p += 16) {
        if (*(u32 *)p != 0x20445352u || *(u32 *)(p + 4) != 0x20525450u)   /* "RSD PTR " */
            continue;
        u32 rsdt = *(u32 *)(p + 16);
        u32 n = (*(u32 *)(rsdt + 4) - 36) / 4;
        for (u32 i = 0; i < n; i++) {
            u32 t = *(u32 *)(rsdt + 36 + 4 * i);
            if (*(u32 *)t == 0x50434146u)   /* "FACP" */
                return (const u8 *)t;
        }
        return 0;
    }
    return 0;
}

u16 acpi_pm1a_cnt(void)
{
    const u8 *fadt = acpi_fadt();
    return fadt ? (u16) * (const u32 *)(fadt + 64) : 0;   /* PM1a_CNT_BLK (5.2.9, offset 64) */
}

void acpi_poweroff(u16 pm1a_cnt)
{
    if (pm1a_cnt)
        outw(pm1a_cnt, 1u << 13);   /* SLP_EN with SLP_TYP 0 (QEMU's soft-off) */
}
