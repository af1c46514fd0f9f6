/* The image's move to the top of RAM at boot: core/lib/relocate.c. */
#ifndef HV_RELOCATE_H
#define HV_RELOCATE_H
#include <hv/types.h>

/* Host tools find the runtime image at link address + a multiple of this (hvtrace/relocation.py). */
#define HV_SLIDE_ALIGN 0x200000ull

/* Runtime address - link address of the image (0: it could not move and runs where it was loaded). */
extern u64 hv_image_slide;
/* End of the hypervisor's region at the top of RAM: the image plus what is left above it (< 2 MiB). */
extern u64 hv_image_top;

/* From entry.S, in long mode at the link address: copy, relocate, return the slide. */
u64 boot_relocate(u32 mbi_addr);
/* After the switch: say where the image runs and clear the copy the loader left at the link address. */
void relocate_finish(void);

#endif
