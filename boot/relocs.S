/*
 * The image's relocation table (hv/tools/relocs.py): empty in the first link pass, the real table
 * (RELOCS_BIN) in the second. core/lib/relocate.c applies it when the image moves to the top of RAM.
 */
    .section .hvrelocs, "a"
    .align 8
#ifdef RELOCS_BIN
    .incbin RELOCS_BIN
#else
    .long 0, 0
#endif
