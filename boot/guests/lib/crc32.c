/* CRC-32 as zlib computes it (guest.h): the guests forge hypervisor record frames with it (abi.h). */
#include "guest.h"

u32 crc32(const u8 *p, u32 n)
{
    u32 crc = ~0u;
    for (u32 i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++)   /* reflected polynomial 0xEDB88320, bit by bit */
            crc = crc >> 1 ^ (0xedb88320u & -(crc & 1));
    }
    return ~crc;
}
