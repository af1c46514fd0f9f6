/*
 * The hypervisor's memset/memcpy/memcmp (hv/core/lib/string.c, word at a time since issue 18) against
 * byte-by-byte references: every size 0..64 at every source/destination misalignment 0..7, with guard
 * bytes around the destination that must stay untouched. string.c is built with its functions renamed
 * hv_* (tests/native/Makefile) so the host's libc stays in place.
 */
#include <stddef.h>
#include <string.h>

#include "check.h"

void *hv_memset(void *d, int c, size_t n);
void *hv_memcpy(void *d, const void *s, size_t n);
int hv_memcmp(const void *a, const void *b, size_t n);

#define MAXN 64
#define PAD 16
#define GUARD 0xa5

static unsigned char src[MAXN + PAD * 2], dst[MAXN + PAD * 2];

static void fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(seed * 131 + i * 7 + 1);
}

static int sign(int v)
{
    return (v > 0) - (v < 0);
}

static void check_memset(size_t off, size_t n, int c)
{
    memset(dst, GUARD, sizeof(dst));
    void *r = hv_memset(dst + PAD + off, c, n);
    CHECK(r == dst + PAD + off, "memset return off=%zu n=%zu", off, n);
    size_t bad = 0;
    for (size_t i = 0; i < sizeof(dst); i++) {
        int in = i >= PAD + off && i < PAD + off + n;
        bad += dst[i] != (in ? (unsigned char)c : GUARD);
    }
    CHECK(bad == 0, "memset off=%zu n=%zu c=%#x: %zu bytes wrong", off, n, c, bad);
}

static void check_memcpy(size_t doff, size_t soff, size_t n)
{
    fill(src, sizeof(src), (unsigned)(doff * 8 + soff));
    memset(dst, GUARD, sizeof(dst));
    void *r = hv_memcpy(dst + PAD + doff, src + PAD + soff, n);
    CHECK(r == dst + PAD + doff, "memcpy return doff=%zu soff=%zu n=%zu", doff, soff, n);
    size_t bad = 0;
    for (size_t i = 0; i < sizeof(dst); i++) {
        int in = i >= PAD + doff && i < PAD + doff + n;
        bad += dst[i] != (in ? src[PAD + soff + (i - PAD - doff)] : GUARD);
    }
    CHECK(bad == 0, "memcpy doff=%zu soff=%zu n=%zu: %zu bytes wrong", doff, soff, n, bad);
}

/* Equal buffers, then a difference at every position (both signs, and a 0x00/0xff pair that would
 * flip the sign if bytes were compared as signed chars). */
static void check_memcmp(size_t aoff, size_t boff, size_t n)
{
    unsigned char *a = src + PAD + aoff, *b = dst + PAD + boff;
    fill(a, n, 3);
    memcpy(b, a, n);
    CHECK(hv_memcmp(a, b, n) == 0, "memcmp equal aoff=%zu boff=%zu n=%zu", aoff, boff, n);
    for (size_t at = 0; at < n; at++) {
        unsigned char keep = b[at];
        for (int k = 0; k < 2; k++) {
            b[at] = k ? 0xff : 0x00;
            if (a[at] == b[at])
                continue;
            int want = sign(memcmp(a, b, n));
            CHECK(sign(hv_memcmp(a, b, n)) == want && sign(hv_memcmp(b, a, n)) == -want,
                  "memcmp aoff=%zu boff=%zu n=%zu diff at %zu", aoff, boff, n, at);
            /* A difference past n is not seen. */
            CHECK(hv_memcmp(a, b, at) == 0, "memcmp prefix n=%zu at=%zu", n, at);
        }
        b[at] = keep;
    }
}

int main(void)
{
    for (size_t n = 0; n <= MAXN; n++)
        for (size_t x = 0; x < 8; x++) {
            check_memset(x, n, 0);
            check_memset(x, n, 0x3c);
            check_memset(x, n, 0x1ff); /* only the low byte is stored */
            for (size_t y = 0; y < 8; y++) {
                check_memcpy(x, y, n);
                check_memcmp(x, y, n);
            }
        }
    return check_summary();
}
