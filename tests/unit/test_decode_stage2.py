"""EPT / NPT entry decoding, walks and summaries.

EPT values from the Intel SDM Vol. 3C 29.3.2, Tables 29-1..29-6 (the numbering hv/vmx/ept.c cites;
e.g. Table 29-4: a 2 MiB leaf, bit 7 set, memory type 5:3), EPTP from 25.6.11. NPT values from AMD
APM Vol. 2 5.3 (long-mode PTE formats: PS bit 7, PAT bit 12 in large leaves and bit 7 in 4 KiB
PTEs, NX bit 63), 7.8.1 (power-on PAT) and 15.25 (nested paging). The last test builds real tables
with the hypervisor's own stage-2 builder (hv/core/mem/stage2.c under the host gcc) and walks them here.
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
from pathlib import Path

import pytest

from hvtrace import paths
from hvtrace.decode import stage2 as s2


def test_ept_2m_leaf_table_29_4() -> None:
    """0x2000b7: RWX (2:0 = 7), WB (5:3 = 6), large (7) at 0x200000."""
    e = s2.decode_ept(0x2000B7, 2)
    assert e.present
    assert e.leaf
    assert (e.addr, e.perms, e.memtype, e.page_size) == (0x200000, s2.RWX, 6, 2 << 20)
    assert not e.ignore_pat
    assert s2.memtype_name(e.memtype) == "WB"
    assert "PS" in e.flags


def test_ept_entry_bits() -> None:
    leaf = s2.decode_ept((1 << 63) | 0x1000 | (1 << 10) | (1 << 9) | (1 << 8) | (1 << 6) | (0 << 3) | 5, 1)
    assert leaf.leaf
    assert leaf.perms == s2.R | s2.X
    assert leaf.memtype == 0
    assert leaf.ignore_pat
    assert leaf.accessed
    assert leaf.dirty
    assert set(leaf.flags) >= {"R", "X", "IPAT", "A", "D", "UX", "SVE"}
    table = s2.decode_ept(0x5007, 3)  # Table 29-3: PDPTE that references a page directory
    assert (table.leaf, table.addr, table.memtype) == (False, 0x5000, None)
    gig = s2.decode_ept(0x4000_00B7, 3)  # Table 29-2: 1 GiB leaf
    assert (gig.leaf, gig.addr, gig.page_size) == (True, 0x4000_0000, 1 << 30)
    assert not s2.decode_ept(0x2000B0, 2).present  # bits 2:0 clear: not present


def test_eptp_25_6_11() -> None:
    """WB (2:0 = 6), 4-level walk (5:3 = 3), A/D (6); what hv/vmx/ept.c ept_eptp() writes."""
    p = s2.decode_eptp(0x1234_5000 | 6 | 3 << 3 | 1 << 6)
    assert (p.root, p.memtype, p.levels, p.ad_enabled) == (0x1234_5000, 6, 4, True)
    assert p.describe() == "root=0x12345000 WB 4-level A/D"


def test_npt_entries_apm_5_3() -> None:
    pde = s2.decode_npt(0x20_0000 | 0x87, 2)  # P RW US PS: 2 MiB, PAT index 0 = WB
    assert (pde.leaf, pde.addr, pde.perms, pde.memtype) == (True, 0x20_0000, s2.RWX, 6)
    uc = s2.decode_npt(0x4000_0000 | 0x9F, 3)  # + PWT PCD: PAT index 3 = UC, 1 GiB
    assert (uc.memtype, uc.page_size) == (0, 1 << 30)
    wt = s2.decode_npt(0x20_0000 | 0x8D, 2)  # P US PWT PS (no RW): index 1 = WT, read/execute
    assert (wt.memtype, wt.perms) == (4, s2.R | s2.X)
    nx = s2.decode_npt((1 << 63) | 0x3000 | 0x07, 1)
    assert nx.perms == s2.R | s2.W
    # PAT is bit 12 in a large leaf (not part of the address) and bit 7 in a 4 KiB PTE.
    big = s2.decode_npt(0x20_0000 | (1 << 12) | 0x87, 2, pat=0x0000_0001_0000_0006)
    assert (big.addr, big.memtype) == (0x20_0000, 1)
    pte = s2.decode_npt(0x5000 | 0x80 | 0x07, 1, pat=0x0000_0001_0000_0006)
    assert (pte.addr, pte.memtype, "PAT" in pte.flags) == (0x5000, 1, True)
    assert s2.decode_npt(0x5000 | 0x03, 1).perms == 0  # U/S clear: nested accesses are user accesses
    assert s2.describe_pat(s2.POWER_ON_PAT).startswith("PA0=WB PA1=WT PA2=UC- PA3=UC")


def _ept_map() -> tuple[int, dict[int, int]]:
    """A synthetic EPT: [0, 2 MiB) as 4 KiB pages (page 0 UC, page 5 read-only), [2 MiB, 1 GiB) as
    2 MiB WB leaves, [1 GiB, 4 GiB) as 1 GiB leaves (the last UC)."""
    mem: dict[int, int] = {}
    pml4, pdpt, pd, pt = 0x1000, 0x2000, 0x3000, 0x4000
    mem[pml4] = pdpt | 7
    mem[pdpt] = pd | 7
    for i in range(1, 4):
        mem[pdpt + 8 * i] = (i << 30) | (0 if i == 3 else 6) << 3 | 0x80 | 7
    mem[pd] = pt | 7
    for i in range(1, 512):
        mem[pd + 8 * i] = (i << 21) | 6 << 3 | 0x80 | 7
    for i in range(512):
        mem[pt + 8 * i] = (i << 12) | (0 if i == 0 else 6) << 3 | (1 if i == 5 else 7)
    return pml4, mem


def test_walk_of_a_synthetic_map() -> None:
    root, mem = _ept_map()
    w = s2.walk(root, 0x5123, lambda a: mem.get(a, 0))
    assert [st.level for st in w.steps] == [4, 3, 2, 1]
    assert (w.hpa, w.perms, w.memtype, w.page_size) == (0x5123, s2.R, 6, 4096)
    big = s2.walk(root | 0x5E, 0x8765_4321, lambda a: mem.get(a, 0))
    assert (big.hpa, big.page_size, big.memtype) == (0x8765_4321, 1 << 30, 6)
    assert "GPA 0x87654321 -> HPA 0x87654321  rwx WB 1 GiB page" in big.describe()[-1]
    hole = s2.walk(root, 1 << 39, lambda a: mem.get(a, 0))
    assert not hole.mapped
    assert len(hole.steps) == 1


def test_summary_merges_and_filters() -> None:
    root, mem = _ept_map()
    reads: list[int] = []

    def read_table(addr: int) -> list[int]:
        reads.append(addr)
        return [mem.get(addr + 8 * i, 0) for i in range(512)]

    rows = s2.summarise(root, read_table=read_table)
    assert sorted(reads) == [0x1000, 0x2000, 0x3000, 0x4000]  # each table once, no page-by-page walk
    got = [(r.start, r.end, s2.perms_str(r.perms), s2.memtype_name(r.memtype), r.page_size) for r in rows]
    assert got == [
        (0x0, 0x1000, "rwx", "UC", 4096),
        (0x1000, 0x5000, "rwx", "WB", 4096),
        (0x5000, 0x6000, "r--", "WB", 4096),
        (0x6000, 0x20_0000, "rwx", "WB", 4096),
        (0x20_0000, 0x4000_0000, "rwx", "WB", 2 << 20),
        (0x4000_0000, 0xC000_0000, "rwx", "WB", 1 << 30),
        (0xC000_0000, 0x1_0000_0000, "rwx", "UC", 1 << 30),
    ]
    uc = s2.summarise(root, lambda a: mem.get(a, 0), types={s2.parse_memtype("uc")})
    assert [(r.start, r.end) for r in uc] == [(0, 0x1000), (0xC000_0000, 0x1_0000_0000)]
    ro = s2.summarise(root, lambda a: mem.get(a, 0), perms=s2.parse_perms("r--"))
    assert [(r.start, r.end) for r in ro] == [(0x5000, 0x6000)]
    window = s2.summarise(root, lambda a: mem.get(a, 0), start=0x3000, end=0x30_0000)
    assert [(r.start, r.end) for r in window] == [
        (0x3000, 0x5000),
        (0x5000, 0x6000),
        (0x6000, 0x20_0000),
        (0x20_0000, 0x30_0000),
    ]
    assert rows[4].describe() == "0x000000200000-0x00003fffffff rwx WB  2 MiB"


def test_summary_of_4gib_in_2mib_pages_reads_only_the_tables() -> None:
    """A 4 GiB map of 2 MiB leaves: 6 table reads (PML4, PDPT, 4 PDs) and one merged range."""
    mem: dict[int, int] = {0x1000: 0x2000 | 7}
    for g in range(4):
        pd = 0x10_0000 + g * 0x1000
        mem[0x2000 + 8 * g] = pd | 7
        for i in range(512):
            mem[pd + 8 * i] = (g << 30) | (i << 21) | 6 << 3 | 0x80 | 7
    count = 0

    def read_table(addr: int) -> list[int]:
        nonlocal count
        count += 1
        return [mem.get(addr + 8 * i, 0) for i in range(512)]

    rows = s2.summarise(0x1000, read_table=read_table)
    assert count == 6
    assert [(r.start, r.end, r.page_size) for r in rows] == [(0, 1 << 32, 2 << 20)]


def test_parsers_reject_nonsense() -> None:
    with pytest.raises(ValueError, match="unknown memory type"):
        s2.parse_memtype("fast")
    with pytest.raises(ValueError, match="bad permissions"):
        s2.parse_perms("rwz")
    assert s2.parse_perms("rw") == s2.R | s2.W


_DUMPER = r"""
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <hv/stage2.h>
#include <hv/svm/npt.h>
#include <hv/vmx/ept.h>

void printk(const char *fmt, ...) { (void)fmt; }

static void *pages[4096];
static unsigned npages;
static void *alloc_page(void *ctx) {
    (void)ctx;
    void *p = aligned_alloc(4096, 4096);
    memset(p, 0, 4096);
    pages[npages++] = p;
    return p;
}

int main(int argc, char **argv) {
    struct memmap m = {0};
    struct mem_range r[] = {
        {0x0, 0x9fc00, MEM_USABLE}, {0x9fc00, 0x400, MEM_RESERVED}, {0xf0000, 0x10000, MEM_RESERVED},
        {0x100000, 0x7ee0000, MEM_USABLE}, {0x7fe0000, 0x20000, MEM_RESERVED},
    };
    m.count = sizeof(r) / sizeof(r[0]);
    memcpy(m.range, r, sizeof(r));
    struct mtrr_state mt;
    memset(&mt, 0, sizeof(mt));
    struct stage2 s;
    memset(&s, 0, sizeof(s));
    s.ops = argv[1][0] == 'e' ? &ept_ops : &npt_ops;
    s.page_sizes = STAGE2_SIZE_2M | STAGE2_SIZE_1G;
    s.alloc_page = alloc_page;
    if (stage2_build_identity(&s, &m, &mt) || stage2_protect(&s, 0x5000, 0x1000, STAGE2_R))
        return 1;
    printf("R %lx %lx\n", (unsigned long)(u64)(uintptr_t)s.root, (unsigned long)s.top);
    for (unsigned i = 0; i < npages; i++) {
        u64 *t = pages[i];
        printf("T %lx", (unsigned long)(uintptr_t)t);
        for (int j = 0; j < 512; j++)
            printf(" %lx", (unsigned long)t[j]);
        printf("\n");
    }
    for (int a = 2; a < argc; a++) {
        struct stage2_walk w;
        u64 gpa = strtoull(argv[a], NULL, 0);
        int rc = stage2_walk(&s, gpa, &w);
        printf("W %lx %d %lx %u %u %d\n", (unsigned long)gpa, rc, (unsigned long)w.hpa, w.perms, w.memtype,
               w.level);
    }
    return 0;
}
"""


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
@pytest.mark.parametrize("kind", ["ept", "npt"])
def test_tables_built_by_the_hypervisor(tmp_path: Path, kind: s2.Kind) -> None:
    """hv/core/mem/stage2.c + vmx/ept.c / svm/npt.c build an identity map; walks and summary agree here."""
    hv = paths.hv_dir()
    src = tmp_path / "dump.c"
    src.write_text(_DUMPER)
    exe = tmp_path / "dump"
    sources = [src, hv / "core/mem/stage2.c", hv / "core/mem/mtrr.c", hv / "vmx/ept.c", hv / "svm/npt.c"]
    cc = ["gcc", "-std=gnu11", "-O1", "-w", f"-I{hv / 'include'}", "-o", str(exe), *map(str, sources)]
    build = subprocess.run(cc, capture_output=True, text=True, check=False)
    assert build.returncode == 0, build.stderr
    gpas = [0x0, 0x5008, 0x9F000, 0x9FC00, 0xF0000, 0x100000, 0x7FDF000, 0x7FE0000, 0xFEE00000, 0x1_2345_6789]
    run = subprocess.run(
        [str(exe), kind, *map(hex, gpas)], capture_output=True, text=True, check=False, timeout=60
    )
    assert run.returncode == 0, run.stderr
    mem: dict[int, int] = {}
    walks: list[list[int]] = []
    root = top = 0
    for line in run.stdout.splitlines():
        tag, *fields = line.split()
        if tag == "R":
            root, top = (int(x, 16) for x in fields)
        elif tag == "T":
            base = int(fields[0], 16)
            mem.update({base + 8 * i: int(x, 16) for i, x in enumerate(fields[1:])})
        else:
            walks.append([int(fields[0], 16), int(fields[1]), int(fields[2], 16), *map(int, fields[3:])])
    for gpa, rc, hpa, perms, memtype, level in walks:
        w = s2.walk(root, gpa, lambda a: mem.get(a, 0), kind=kind)
        if gpa >= top:  # the identity map ends at top; stage2_walk() fails there
            assert rc == -1
            assert not w.mapped
            continue
        assert rc == 0
        assert w.hpa == hpa == gpa
        assert (w.perms, w.memtype, w.page_size) == (perms, memtype, s2.level_size(level)), hex(gpa)
    rows = s2.summarise(root, lambda a: mem.get(a, 0), kind=kind)
    assert rows[0].start == 0
    assert rows[-1].end == top
    assert all(a.end == b.start for a, b in itertools.pairwise(rows))  # no holes
    ro = [(r.start, r.end) for r in rows if r.perms == s2.R]
    assert ro == [(0x5000, 0x6000)]
    assert s2.walk(root, 0x7FE0000, lambda a: mem.get(a, 0), kind=kind).memtype == 0  # reserved: UC
