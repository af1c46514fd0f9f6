/*
 * Included first in every hypervisor C file (-include): with -fpie, hidden visibility makes every
 * symbol, defined here or declared extern, local to the image, so the compiler addresses it
 * RIP-relative instead of through a GOT. The image then slides by applying only the absolute pointers
 * listed in its relocation table (hv/tools/relocs.py, core/lib/relocate.c). Linux does the same
 * (include/linux/hidden.h).
 */
#pragma GCC visibility push(hidden)
