/*
 * Which I/O ports the hypervisor intercepts for a loaded guest (core/guest/io_policy.c): one table, one
 * function both back ends call to fill their bitmaps. Every other port the guest owns outright.
 */
#ifndef HV_IO_POLICY_H
#define HV_IO_POLICY_H

#include <hv/types.h>

/* Bytes of a one-bit-per-port map of the whole 64 KiB I/O space (VT-x bitmaps A+B, SVM IOPM's first 8 KiB). */
#define IO_POLICY_MAP_BYTES (0x10000 / 8)

/*
 * Set the bit of every intercepted port in 'map' (IO_POLICY_MAP_BYTES, bit n of byte p/8 = port p)
 * and return how many ports were set (0: the guest has no intercepted port). Bits already set stay.
 */
u32 io_policy_fill(u8 *map);

/* Why a port is intercepted: the table's entries (core/guest/io_policy.c). */
enum io_policy_why {
    IO_POLICY_POWER_OFF,        /* the guest powers the machine off: the run ends */
    IO_POLICY_DEBUG_EXIT,       /* the guest's isa-debug-exit: the run ends with its code apart */
    IO_POLICY_HIDDEN,           /* a hypervisor-private device: reads all ones, writes dropped */
    IO_POLICY_GUEST_CONSOLE,    /* port 0xE9: the guest's bytes go to its own console, not the frames */
    IO_POLICY_SMI_CMD,          /* the software SMI port: performed by the hypervisor, the SMI comes in host mode */
};

#define IO_POLICY_BIT(why) (1u << (why))

/* The reasons (IO_POLICY_BIT of each) the policy intercepts a port of the access [port, port + size)
 * for: one pass over the table, so an exit asks once and tests bits. */
u32 io_policy_whys(u16 port, u32 size);

#endif
