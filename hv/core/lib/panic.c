/* The single way a run ends: a final status line on every console, then leave the emulator. */
#include <hv/abi.h>
#include <hv/console.h>
#include <hv/panic.h>
#include <hv/x86.h>

static volatile u32 exiting;

static __noreturn void exit_with(u32 status, const char *reason, bool has_guest_code, u32 guest_code)
{
    /* Only the first CPU to get here reports; a second one (e.g. faulting meanwhile) just stops. */
    if (__atomic_exchange_n(&exiting, 1, __ATOMIC_ACQ_REL) == 0) {
        if (has_guest_code)
            printk("%s code=%u result=%s reason=%s guest_code=%u\n", HV_STATUS_PREFIX, status,
                   status == HV_STATUS_PASS ? "pass" : "fail", reason, guest_code);
        else
            printk("%s code=%u result=%s reason=%s\n", HV_STATUS_PREFIX, status,
                   status == HV_STATUS_PASS ? "pass" : "fail", reason);
        console_flush();
        /* QEMU: isa-debug-exit ends the process with status (value << 1) | 1. */
        outl(HV_DEBUG_EXIT_PORT, status);
        /* Bochs: magic breakpoint; the debugger script then quits. A no-op elsewhere. */
        __asm__ volatile("xchg %%bx, %%bx" ::: "memory");
    }
    for (;;)
        __asm__ volatile("cli; hlt");
}

__noreturn void hv_exit(u32 status, const char *reason)
{
    exit_with(status, reason, false, 0);
}

__noreturn void hv_exit_guest_code(u32 status, const char *reason, u32 guest_code)
{
    exit_with(status, reason, true, guest_code);
}

__noreturn void hv_fail(u32 status, const char *reason, const char *fmt, ...)
{
    char buf[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    printk("hvtrace: FATAL: %s\n", buf);
    hv_exit(status, reason);
}
