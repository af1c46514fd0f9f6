/*
 * The guest's CPUID (hv/core/guest/cpuid_leaves.c) against the host CPU it runs on. The exit's fast
 * path (hv/include/hv/exit_fast.h) executes every leaf that cpuid_leaf_adjusted() does not name itself,
 * without hv_guest_cpuid_adjusted(): so for every such leaf and sub-leaf, under any guest CR4, the
 * adjusted answer must be the CPU's own. A leaf the hypervisor changes but forgets to name there would
 * reach the guest unchanged on the fast path only. Pinned to one CPU: leaves such as 0Bh report the
 * executing CPU's x2APIC ID (SDM Vol. 2A CPUID).
 */
#define _GNU_SOURCE
#include <sched.h>
#include <string.h>

#include <hv/abi.h>
#include <hv/cpuid_leaves.h>
#include <hv/x86.h>

#include "check.h"

static struct cpuid_regs raw(u32 leaf, u32 sub)
{
    struct cpuid_regs r;
    __asm__ volatile("cpuid" : "=a"(r.a), "=b"(r.b), "=c"(r.c), "=d"(r.d) : "a"(leaf), "c"(sub));
    return r;
}

static void check_range(u32 first, u32 last)
{
    static const u64 cr4s[] = { 0, X86_CR4_OSXSAVE | X86_CR4_PKE };
    for (u32 leaf = first; leaf <= last; leaf++) {
        CHECK(!cpuid_leaf_mirrors_cr4(leaf) || cpuid_leaf_adjusted(leaf), "leaf %#x mirrors CR4 but is not adjusted", leaf);
        if (cpuid_leaf_adjusted(leaf))
            continue;
        for (u32 sub = 0; sub < 4; sub++)
            for (u32 i = 0; i < sizeof(cr4s) / sizeof(cr4s[0]); i++) {
                struct cpuid_regs want = raw(leaf, sub), got = hv_guest_cpuid_adjusted(leaf, sub, cr4s[i]);
                CHECK(memcmp(&want, &got, sizeof(want)) == 0,
                      "leaf %#x.%u (CR4 %#llx): the CPU gives %08x %08x %08x %08x, the guest's CPUID %08x %08x %08x %08x",
                      leaf, sub, (unsigned long long)cr4s[i], want.a, want.b, want.c, want.d, got.a, got.b, got.c,
                      got.d);
            }
    }
}

int main(void)
{
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(sched_getcpu(), &one);
    CHECK(sched_setaffinity(0, sizeof(one), &one) == 0, "pinning to one CPU");
    u32 max_basic = raw(0, 0).a, max_ext = raw(0x80000000, 0).a;
    check_range(0, (max_basic > 0x20 ? max_basic : 0x20) + 2);
    check_range(0x40000000, 0x40000101);
    check_range(0x80000000, (max_ext > 0x80000020 ? max_ext : 0x80000020) + 2);
    /* The leaves the fast path leaves alone are answered as documented (cpuid_leaves.h). */
    struct cpuid_regs sig = hv_guest_cpuid_adjusted(0x40000000, 0, 0), ver = hv_guest_cpuid_adjusted(0x40000001, 0, 0);
    char name[13] = { 0 };
    memcpy(name, &sig.b, 4);
    memcpy(name + 4, &sig.c, 4);
    memcpy(name + 8, &sig.d, 4);
    CHECK(sig.a == HV_CPUID_MAX_LEAF && strcmp(name, HV_CPUID_SIGNATURE) == 0, "signature leaf: %#x %s", sig.a, name);
    CHECK(ver.a == HV_ABI_VERSION, "ABI version leaf: %u", ver.a);
    CHECK(hv_guest_cpuid_adjusted(1, 0, 0).c >> 31, "CPUID.1:ECX[31] (hypervisor present)");
    CHECK(!(hv_guest_cpuid_adjusted(1, 0, 0).c & (1u << 27)) && (hv_guest_cpuid_adjusted(1, 0, X86_CR4_OSXSAVE).c & (1u << 27)),
          "CPUID.1:ECX.OSXSAVE[27] follows the guest's CR4.OSXSAVE");
    return check_summary();
}
