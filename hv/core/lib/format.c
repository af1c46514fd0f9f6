/* Minimal vsnprintf: %c %s %d %i %u %x %X %p %%, flags '-' '0', width, %.Ns / %.*s, length l/ll/z. */
#include <hv/console.h>

struct out {
    char *buf;
    size_t size, len;
};

static void put(struct out *o, char c)
{
    if (o->len + 1 < o->size)
        o->buf[o->len] = c;
    o->len++;
}

static void put_number(struct out *o, u64 v, unsigned base, bool neg, bool upper, int width, char pad, bool left)
{
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = digits[v % base];
        v /= base;
    } while (v);
    if (neg)
        tmp[n++] = '-';
    int fill = width > n ? width - n : 0;
    if (!left && pad == '0' && neg) {      /* "-0042": the sign goes before the zeros */
        put(o, tmp[--n]);
    }
    if (!left)
        while (fill--)
            put(o, pad);
    while (n)
        put(o, tmp[--n]);
    if (left)
        while (fill-- > 0)
            put(o, ' ');
}

int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
    struct out o = { buf, size, 0 };
    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            put(&o, *fmt);
            continue;
        }
        fmt++;
        bool left = false;
        char pad = ' ';
        for (;; fmt++) {
            if (*fmt == '-')
                left = true;
            else if (*fmt == '0')
                pad = '0';
            else
                break;
        }
        int width = 0;
        while (*fmt >= '0' && *fmt <= '9')
            width = width * 10 + (*fmt++ - '0');
        int prec = -1;                  /* only for %s: "%.*s" prints a counted string */
        if (*fmt == '.') {
            fmt++;
            if (*fmt == '*') {
                prec = va_arg(ap, int);
                fmt++;
            } else {
                for (prec = 0; *fmt >= '0' && *fmt <= '9'; fmt++)
                    prec = prec * 10 + (*fmt - '0');
            }
        }
        int lng = 0;
        while (*fmt == 'l' || *fmt == 'z') {
            lng++;
            fmt++;
        }
        switch (*fmt) {
        case 'c':
            put(&o, (char)va_arg(ap, int));
            break;
        case 's': {
            const char *s = va_arg(ap, const char *);
            if (!s)
                s = "(null)";
            int n = 0;
            while (s[n] && (prec < 0 || n < prec))
                n++;
            if (!left)
                for (int i = n; i < width; i++)
                    put(&o, ' ');
            for (int i = 0; i < n; i++)
                put(&o, s[i]);
            if (left)
                for (int i = n; i < width; i++)
                    put(&o, ' ');
            break;
        }
        case 'd':
        case 'i': {
            i64 v = lng ? va_arg(ap, i64) : va_arg(ap, int);
            put_number(&o, v < 0 ? (u64)-v : (u64)v, 10, v < 0, false, width, pad, left);
            break;
        }
        case 'u':
            put_number(&o, lng ? va_arg(ap, u64) : va_arg(ap, unsigned), 10, false, false, width, pad, left);
            break;
        case 'x':
        case 'X':
            put_number(&o, lng ? va_arg(ap, u64) : va_arg(ap, unsigned), 16, false, *fmt == 'X', width, pad,
                       left);
            break;
        case 'p':
            put(&o, '0');
            put(&o, 'x');
            put_number(&o, (u64)va_arg(ap, void *), 16, false, false, 16, '0', false);
            break;
        case '%':
            put(&o, '%');
            break;
        default:                        /* unknown conversion: show it rather than guess */
            put(&o, '%');
            if (*fmt)
                put(&o, *fmt);
            else
                fmt--;
            break;
        }
    }
    if (size)
        buf[o.len < size ? o.len : size - 1] = 0;
    return (int)o.len;
}

int snprintf(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return n;
}
