/* The few libc routines the compiler and the core expect in a freestanding build. */
#include <hv/types.h>

/*
 * memset/memcpy/memcmp move 8 bytes at a time, then the tail byte by byte (issue 18: the byte loops cost
 * ~590 instructions on a stage-2 fault exit). x86-64 allows unaligned loads and stores, so `word` is an
 * unaligned, may_alias u64. memcpy copies forward: like the byte loop, right for d < s overlaps; nothing
 * here offers memmove. The word loops must not become calls to these same functions, hence the optimize
 * attribute (GCC turns store loops into memset/memcpy calls even under -ffreestanding).
 */
typedef u64 __attribute__((may_alias, aligned(1))) word;
#define NO_LIBCALLS __attribute__((optimize("no-tree-loop-distribute-patterns")))

NO_LIBCALLS void *memset(void *d, int c, size_t n)
{
    u8 *p = d;
    word w = 0x0101010101010101ull * (u8)c;
    for (; n >= 8; n -= 8, p += 8)
        *(word *)p = w;
    while (n--)
        *p++ = (u8)c;
    return d;
}

NO_LIBCALLS void *memcpy(void *d, const void *s, size_t n)
{
    u8 *dp = d;
    const u8 *sp = s;
    for (; n >= 8; n -= 8, dp += 8, sp += 8)
        *(word *)dp = *(const word *)sp;
    while (n--)
        *dp++ = *sp++;
    return d;
}

NO_LIBCALLS int memcmp(const void *a, const void *b, size_t n)
{
    const u8 *x = a, *y = b;
    /* Skip equal words; the first differing word is compared byte by byte below. */
    for (; n >= 8 && *(const word *)x == *(const word *)y; n -= 8, x += 8, y += 8)
        ;
    for (; n; n--, x++, y++)
        if (*x != *y)
            return *x - *y;
    return 0;
}

size_t strlen(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}

int strncmp(const char *a, const char *b, size_t n)
{
    for (; n; n--, a++, b++) {
        if (*a != *b)
            return (u8)*a - (u8)*b;
        if (!*a)
            return 0;
    }
    return 0;
}
