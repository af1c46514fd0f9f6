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
