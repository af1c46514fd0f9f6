/* Command-line words (guest.h). */
#include "guest.h"

int cmdline_word(const char *cmdline, const char *key, const char **val)
{
    u32 n = 0;
    while (key[n])
        n++;
    for (const char *p = cmdline; *p; p++) {
        if (p != cmdline && p[-1] != ' ')
            continue;
        u32 i = 0;
        while (i < n && p[i] == key[i])
            i++;
        if (i == n) {
            *val = p + n;
            return 1;
        }
    }
    return 0;
}

char *mb_cmdline(char *buf, u32 size, u32 magic, const struct mb_info *info)
{
    u32 n = 0;
    if (magic == 0x2badb002 && (info->flags & (1u << 2))) {   /* Multiboot 0.6.96 3.3: flags[2], cmdline */
        const char *src = (const char *)info->cmdline;
        for (; src[n] && n < size - 1; n++)
            buf[n] = src[n];
    }
    buf[n] = 0;
    return buf;
}
