/* Framed, checksummed records on port 0xE9 (abi.h HV_FRAME_*), for hosts that cannot read our RAM. */
#include <hv/abi.h>
#include <hv/console.h>
#include <hv/frame.h>
#include <hv/x86.h>

/* CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), bitwise: 64 bytes per exit, no table needed. */
u32 frame_crc32(const void *data, size_t n)
{
    const u8 *p = data;
    u32 crc = ~0u;
    while (n--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xedb88320u & -(crc & 1));
    }
    return ~crc;
}

void frame_emit(const struct hv_record *rec)
{
    struct {
        u32 magic;
        struct hv_record rec;
        u32 crc;
    } __packed f = { HV_FRAME_MAGIC, *rec, frame_crc32(rec, sizeof(*rec)) };
    _Static_assert(sizeof(f) == HV_FRAME_SIZE, "frame layout");
    console_write_e9(&f, sizeof(f));
}
