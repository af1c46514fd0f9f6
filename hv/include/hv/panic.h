/* Ending a run: every path prints one final status line (see abi.h) and leaves the emulator. */
#ifndef HV_PANIC_H
#define HV_PANIC_H

#include <hv/types.h>

__noreturn void hv_exit(u32 status, const char *reason);
/* hv_exit() for a guest that ended the run with its own code: the line adds guest_code=<code>. */
__noreturn void hv_exit_guest_code(u32 status, const char *reason, u32 guest_code);
/* Print "hvtrace: FATAL: <message>" and end the run with a failure status. */
__noreturn void hv_fail(u32 status, const char *reason, const char *fmt, ...) __printf(3, 4);

#endif
