/*
 * The discovery header (abi.h struct hv_discovery) at the ELF symbol 'hv_trace' plus the image's slide
 * (core/lib/relocate.c): how host tools find the per-CPU snapshot areas (and later the rings) in guest RAM,
 * by symbol (hvtrace/relocation.py finds the slide from it) or by scanning for the magic.
 */
#include <hv/abi.h>
#include <hv/breaks.h>
#include <hv/discovery.h>

struct hv_discovery hv_trace __attribute__((aligned(64))) = {
    .magic = HV_DISCOVERY_MAGIC,
    .abi_version = HV_ABI_VERSION,
    .header_size = sizeof(struct hv_discovery),
    .snapshot_size = sizeof(struct hv_snapshot),
};

/* GNU build-id note (ELF gABI note: namesz, descsz, type, "GNU\0", then the 20-byte SHA-1). */
extern const u8 __build_id_note[];

void discovery_init(u32 cpus)
{
    const u32 *note = (const u32 *)__build_id_note;
    if (note[0] == 4 && note[1] == sizeof(hv_trace.build_id) && note[2] == 3)
        memcpy(hv_trace.build_id, __build_id_note + 16, sizeof(hv_trace.build_id));
    hv_trace.cpu_count = cpus;
    hv_trace.break_config = (u64)&hv_breaks;
}
