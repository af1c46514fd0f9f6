/* The register frame core/cpu/isr.S builds for exception_entry() (and gdbstub's park, park.S). */
#ifndef HV_EXCEPTION_FRAME_H
#define HV_EXCEPTION_FRAME_H

#include <hv/types.h>

struct exception_frame {
    u64 r15, r14, r13, r12, r11, r10, r9, r8;
    u64 rbp, rdi, rsi, rdx, rcx, rbx, rax;
    u64 vector, error;
    u64 rip, cs, rflags, rsp, ss;        /* pushed by the CPU */
};

#endif
