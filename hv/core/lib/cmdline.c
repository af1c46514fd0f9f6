/*
 * Kernel command line: space-separated key=value options. Both QEMU (-kernel/-append) and GRUB put
 * the image path first; a first word without '=' is that path and is skipped. An unknown option ends
 * the run (HV_STATUS_BAD_CMDLINE) rather than being ignored: a typo must not silently change a test.
 */
#include <hv/abi.h>
#include <hv/cmdline.h>
#include <hv/console.h>
#include <hv/panic.h>

struct hv_options hv_options = {
    .fault = FAULT_NONE,
    .fault_cpu = -1,
    .ap_timeout_ms = 1000,
    .hang = false,
    .ring_capacity = 0,     /* sized from guest RAM (core/trace/trace.c) */
    .ring_policy = HV_RING_OVERWRITE,
    .trace = true,
    .console_port = HV_CONSOLE_UART,
    .console_baud = HV_CONSOLE_BAUD,
};
char hv_cmdline[256];

static bool parse_u64(const char *s, size_t n, u64 *out)
{
    u64 v = 0;
    if (!n)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9' || v > (~0ull - 9) / 10)
            return false;
        v = v * 10 + (u64)(s[i] - '0');
    }
    *out = v;
    return true;
}

/* "0x" and hex digits (an I/O port). */
static bool parse_hex(const char *s, size_t n, u64 *out)
{
    u64 v = 0;
    if (n < 3 || s[0] != '0' || (s[1] != 'x' && s[1] != 'X') || n > 2 + 8)
        return false;
    for (size_t i = 2; i < n; i++) {
        char c = s[i];
        u64 d = c >= '0' && c <= '9' ? (u64)(c - '0')
                : c >= 'a' && c <= 'f' ? (u64)(c - 'a' + 10)
                : c >= 'A' && c <= 'F' ? (u64)(c - 'A' + 10)
                                       : 16;
        if (d == 16)
            return false;
        v = v * 16 + d;
    }
    *out = v;
    return true;
}

static bool word_is(const char *s, size_t n, const char *lit)
{
    return strlen(lit) == n && !strncmp(s, lit, n);
}

static __noreturn void bad_option(const char *word, size_t n, const char *why)
{
    hv_fail(HV_STATUS_BAD_CMDLINE, "bad_cmdline", "command line option '%.*s': %s", (int)n, word, why);
}

/* A value chosen by name: the index of names[i] (NULL entries never match), else the option is refused. */
static u32 choice(const char *w, size_t n, const char *v, size_t vn, const char *const *names, size_t count,
                  const char *why)
{
    for (size_t i = 0; i < count; i++)
        if (names[i] && word_is(v, vn, names[i]))
            return (u32)i;
    bad_option(w, n, why);
}

/*
 * console=PORT,BAUD. The standard ISA ports by name (the BIOS data area's order); another port must
 * leave room for the 16550's 8 registers. BAUD must be 115200/divisor exactly: a baud rate the UART
 * cannot produce would garble the line without a word.
 */
static void parse_console(const char *w, size_t n, const char *v, size_t vn)
{
    static const char *const names[] = { "com1", "com2", "com3", "com4" };
    static const u16 ports[] = { 0x3f8, 0x2f8, 0x3e8, 0x2e8 };
    size_t c = 0;
    while (c < vn && v[c] != ',')
        c++;
    if (c == vn)
        bad_option(w, n, "expected PORT,BAUD (e.g. com1,115200 or 0xe010,9600)");
    u64 port = 0, baud;
    for (size_t i = 0; i < ARRAY_SIZE(names); i++)
        if (word_is(v, c, names[i]))
            port = ports[i];
    if (!port && (!parse_hex(v, c, &port) || port == 0 || port > 0xfff8))
        bad_option(w, n, "PORT must be com1..com4 or an I/O port 0x1..0xfff8");
    if (!parse_u64(v + c + 1, vn - c - 1, &baud) || baud == 0 || baud > HV_CONSOLE_BAUD ||
        HV_CONSOLE_BAUD % baud || HV_CONSOLE_BAUD / baud > 0xffff)
        bad_option(w, n, "BAUD must divide 115200 (115200, 57600, 38400, 19200, 9600, ...)");
    hv_options.console_port = (u16)port;
    hv_options.console_baud = (u32)baud;
}

static void parse_option(const char *w, size_t n)
{
    size_t k = 0;
    while (k < n && w[k] != '=')
        k++;
    if (k == n)
        bad_option(w, n, "expected key=value");
    const char *v = w + k + 1;
    size_t vn = n - k - 1;
    u64 num;
    if (word_is(w, k, "fault")) {
        static const char *const kinds[] = {
            [FAULT_NONE] = "none", [FAULT_UD] = "ud", [FAULT_GP] = "gp", [FAULT_PF] = "pf", [FAULT_DE] = "de",
        };
        hv_options.fault = choice(w, n, v, vn, kinds, ARRAY_SIZE(kinds),
                                  "fault must be one of none, ud, gp, pf, de");
    } else if (word_is(w, k, "entry_fault")) {
        static const char *const kinds[] = {
            [ENTRY_FAULT_CONTROL] = "control", [ENTRY_FAULT_GUEST_STATE] = "guest_state",
        };
        hv_options.entry_fault = choice(w, n, v, vn, kinds, ARRAY_SIZE(kinds),
                                        "entry_fault must be control or guest_state");
    } else if (word_is(w, k, "ring")) {
        if (!parse_u64(v, vn, &num) || num < 16 || num > HV_RING_MAX_CAPACITY || (num & (num - 1)))
            bad_option(w, n, "expected a power of two from 16 to 1048576");
        hv_options.ring_capacity = (u32)num;
    } else if (word_is(w, k, "ring_wait")) {
        if (!parse_u64(v, vn, &num) || num > 600)
            bad_option(w, n, "expected seconds from 0 to 600");
        hv_options.ring_wait_s = (u32)num;
    } else if (word_is(w, k, "ring_policy")) {
        static const char *const policies[] = { [HV_RING_DROP_NEWEST] = "drop", [HV_RING_OVERWRITE] = "overwrite" };
        hv_options.ring_policy = choice(w, n, v, vn, policies, ARRAY_SIZE(policies),
                                        "ring_policy must be drop or overwrite");
    } else if (word_is(w, k, "unhandled_exit_test")) {
        if (!parse_u64(v, vn, &num) || num > 1)
            bad_option(w, n, "expected 0 or 1");
        hv_options.unhandled_exit_test = num == 1;
    } else if (word_is(w, k, "fault_cpu")) {
        if (!parse_u64(v, vn, &num) || num >= HV_MAX_CPUS)
            bad_option(w, n, "expected a CPU index");
        hv_options.fault_cpu = (i64)num;
    } else if (word_is(w, k, "ap_timeout_ms")) {
        if (!parse_u64(v, vn, &num) || num == 0 || num > 600000)
            bad_option(w, n, "expected 1..600000");
        hv_options.ap_timeout_ms = (u32)num;
    } else if (word_is(w, k, "hang") || word_is(w, k, "trace_e9") || word_is(w, k, "storm") ||
               word_is(w, k, "trace") || word_is(w, k, "gdbstub") || word_is(w, k, "storm_mix")) {
        if (!parse_u64(v, vn, &num) || num > 1)
            bad_option(w, n, "expected 0 or 1");
        bool *flag = word_is(w, k, "hang")    ? &hv_options.hang
                     : word_is(w, k, "storm") ? &hv_options.storm
                     : word_is(w, k, "trace") ? &hv_options.trace
                     : word_is(w, k, "gdbstub") ? &hv_options.gdbstub
                     : word_is(w, k, "storm_mix") ? &hv_options.storm_mix
                                              : &hv_options.trace_e9;
        *flag = num == 1;
    } else if (word_is(w, k, "console")) {
        parse_console(w, n, v, vn);
    } else if (word_is(w, k, "storm_iters")) {
        if (!parse_u64(v, vn, &num) || num == 0)
            bad_option(w, n, "expected a positive count");
        hv_options.storm_iters = num;
    } else {
        bad_option(w, n, "unknown option");
    }
}

void cmdline_parse(const char *cmdline)
{
    size_t len = cmdline ? strlen(cmdline) : 0;
    if (len >= sizeof(hv_cmdline))
        hv_fail(HV_STATUS_BAD_CMDLINE, "bad_cmdline", "command line longer than %zu bytes",
                sizeof(hv_cmdline) - 1);
    memcpy(hv_cmdline, cmdline ? cmdline : "", len + 1);

    const char *p = hv_cmdline;
    bool first = true;
    while (*p) {
        while (*p == ' ')
            p++;
        const char *w = p;
        while (*p && *p != ' ')
            p++;
        size_t n = (size_t)(p - w);
        if (!n)
            break;
        bool has_eq = false;
        for (size_t i = 0; i < n; i++)
            has_eq |= w[i] == '=';
        if (!(first && !has_eq))
            parse_option(w, n);
        first = false;
    }
}
