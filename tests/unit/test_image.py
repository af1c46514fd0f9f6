from __future__ import annotations

import os
import time
from pathlib import Path

from hvtrace import image, paths
from hvtrace.image import image_is_stale, iso_key, iter_sources


def _touch(p: Path, mtime: float) -> None:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("x")
    os.utime(p, (mtime, mtime))


def test_repo_root_layout() -> None:
    root = paths.repo_root()
    assert (root / "hvtrace" / "paths.py").is_file()
    assert paths.image_path() == root / "hv" / "build" / "hvtrace.elf"
    assert paths.abi_header().is_file()


def test_sources_by_suffix_skipping_build(tmp_path: Path) -> None:
    now = time.time()
    hv, boot = tmp_path / "hv", tmp_path / "boot"
    for name in ("core/a.c", "include/a.h", "Makefile", "core/x.S", "tools/relocs.py", "notes.md"):
        _touch(hv / name, now)
    _touch(boot / "linker.ld", now)
    _touch(boot / "guest.asm", now)
    _touch(hv / "build" / "core" / "a.o", now)
    _touch(hv / "build" / "gen.h", now)
    found = {p.relative_to(tmp_path).as_posix() for p in iter_sources(hv, boot, skip=hv / "build")}
    assert found == {
        "hv/core/a.c",
        "hv/include/a.h",
        "hv/Makefile",
        "hv/core/x.S",
        "hv/tools/relocs.py",  # makes the image's relocation table
        "boot/linker.ld",
        "boot/guest.asm",
    }


def test_staleness(tmp_path: Path) -> None:
    hv = tmp_path / "hv"
    elf = hv / "build" / "hvtrace.elf"
    _touch(hv / "core" / "a.c", 1000)
    assert image_is_stale(elf, hv, skip=hv / "build")  # missing
    _touch(elf, 2000)
    assert not image_is_stale(elf, hv, skip=hv / "build")
    _touch(hv / "core" / "a.c", 3000)  # edited after the build
    assert image_is_stale(elf, hv, skip=hv / "build")
    _touch(hv / "build" / "core" / "a.d", 4000)  # build outputs never count
    _touch(elf, 3500)
    assert not image_is_stale(elf, hv, skip=hv / "build")


def test_iso_key_depends_on_image_and_cmdline(tmp_path: Path) -> None:
    a = tmp_path / "a.elf"
    a.write_bytes(b"\x7fELF one")
    k1 = iso_key(a, "")
    assert k1 == iso_key(a, "")
    assert k1 != iso_key(a, "fault=ud")
    a.write_bytes(b"\x7fELF two")
    assert iso_key(a, "") != k1
    assert len(k1) == 64


def test_iso_cache_keeps_only_the_newest(tmp_path: Path) -> None:
    for i in range(image.ISO_CACHE_KEEP + 5):
        iso = tmp_path / f"{i:02d}.iso"
        iso.write_bytes(b"x")
        os.utime(iso, (1000 + i, 1000 + i))
    image.prune_iso_cache(tmp_path, keep=tmp_path / "00.iso")
    left = sorted(p.name for p in tmp_path.glob("*.iso"))
    newest = [f"{i:02d}.iso" for i in range(5, image.ISO_CACHE_KEEP + 5)]
    assert left == sorted(["00.iso", *newest])
