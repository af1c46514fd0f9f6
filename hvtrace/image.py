"""Build the hypervisor image on demand, and GRUB ISOs (for Bochs and `hvtrace image`) into a
content-addressed cache."""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from hvtrace import paths
from hvtrace.exitcodes import ExitCode, LaunchError
from hvtrace.tools import GRUB_I386_PC, require_file, require_tool, run_tool

if TYPE_CHECKING:  # hvtrace.launch imports this module
    from hvtrace.launch.guest import GuestSpec

#: Files whose change makes the image stale (.py: hv/tools/relocs.py makes the image's relocation table).
SOURCE_SUFFIXES = frozenset({".c", ".h", ".S", ".s", ".asm", ".ld", ".inc", ".py"})
SOURCE_NAMES = frozenset({"Makefile"})


def iter_sources(*dirs: Path, skip: Path | None = None) -> Iterator[Path]:
    """Every build input under ``dirs`` (by suffix or name), skipping the build output dir ``skip``."""
    for top in dirs:
        if not top.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(top):
            here = Path(dirpath)
            if skip is not None:
                dirnames[:] = [d for d in dirnames if (here / d).resolve() != skip.resolve()]
            for name in filenames:
                p = here / name
                if p.suffix in SOURCE_SUFFIXES or name in SOURCE_NAMES:
                    yield p


def newest_source_mtime(*dirs: Path, skip: Path | None = None) -> float:
    return max((p.stat().st_mtime for p in iter_sources(*dirs, skip=skip)), default=0.0)


def image_is_stale(elf: Path, *dirs: Path, skip: Path | None = None) -> bool:
    """True when ``elf`` is missing or older than any source under ``dirs``."""
    try:
        built = elf.stat().st_mtime
    except FileNotFoundError:
        return True
    return newest_source_mtime(*dirs, skip=skip) > built


@contextmanager
def _file_lock(name: str) -> Iterator[None]:
    """Host-wide lock so parallel hvtrace runs never run two builds of the same tree at once."""
    lock_path = Path(tempfile.gettempdir()) / name
    with open(lock_path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _root_tag() -> str:
    return hashlib.sha256(str(paths.build_dir()).encode()).hexdigest()[:16]


def ensure_image() -> Path:
    """Path of hv/build/hvtrace.elf, running `make -C hv` first when it is missing or stale.

    On failure raises LaunchError(BUILD_FAILED) whose message carries make's output.
    """
    elf = paths.image_path()
    if paths.installed():  # a wheel carries the built image and no sources to build it from
        if not elf.is_file():
            raise LaunchError(ExitCode.BUILD_FAILED, f"this installation lacks its hypervisor image {elf}")
        return elf
    dirs = (paths.hv_dir(), paths.boot_dir())
    if not image_is_stale(elf, *dirs, skip=paths.build_dir()):
        return elf
    make = require_tool("make", "to build the hypervisor image")
    with _file_lock(f"hvtrace-build-{_root_tag()}.lock"):
        if image_is_stale(elf, *dirs, skip=paths.build_dir()):
            proc = run_tool([make, "-s", "-C", str(paths.hv_dir())])
            if proc.returncode != 0:
                raise LaunchError(
                    ExitCode.BUILD_FAILED,
                    f"building the hypervisor failed (make -C {paths.hv_dir()} exited "
                    f"{proc.returncode}):\n{proc.stdout.rstrip()}",
                )
    if not elf.is_file():
        raise LaunchError(ExitCode.BUILD_FAILED, f"make -C {paths.hv_dir()} succeeded but {elf} is missing")
    return elf


def iso_key(elf: Path, cmdline: str, guest: GuestSpec | None = None) -> str:
    """Cache key of a GRUB ISO: sha256 over the image bytes, the kernel command line and boot/mkiso.sh
    (what it writes into grub.cfg), and with a guest its kernel's and initrd's contents and command
    line (:meth:`GuestSpec.digest`)."""
    h = hashlib.sha256()
    script = paths.mkiso_script()
    if script.is_file():
        h.update(script.read_bytes())
        h.update(b"\0")
    h.update(elf.read_bytes())
    h.update(b"\0")
    h.update(cmdline.encode())
    if guest is not None:
        h.update(b"\0guest\0")
        h.update(guest.digest().encode())
    return h.hexdigest()


def ensure_iso(elf: Path, cmdline: str, guest: GuestSpec | None = None) -> Path:
    """A bootable GRUB ISO for ``elf`` with ``cmdline`` (and ``guest`` as multiboot modules), built by
    boot/mkiso.sh and cached by content."""
    if guest is not None:
        guest.check_grub()
    cache = paths.iso_cache_dir()
    iso = cache / f"{iso_key(elf, cmdline, guest)}.iso"
    if iso.is_file():
        return iso
    script = paths.mkiso_script()
    if not script.is_file():
        raise LaunchError(ExitCode.BUILD_FAILED, f"{script} is missing: cannot build the GRUB ISO")
    require_tool("grub-mkrescue", "to build the GRUB ISO")
    require_tool("xorriso", "by grub-mkrescue")
    require_tool("mformat", "by grub-mkrescue")
    require_file(GRUB_I386_PC, "by grub-mkrescue for BIOS boot")
    cache.mkdir(parents=True, exist_ok=True)
    # Build under a unique name, then rename: parallel runs never see a half-written ISO.
    fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", suffix=".iso", dir=cache)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        proc = run_tool(
            ["bash", str(script), str(elf), str(tmp), cmdline, *(guest.mkiso_args() if guest else [])]
        )
        if proc.returncode != 0 or tmp.stat().st_size == 0:
            raise LaunchError(
                ExitCode.BUILD_FAILED,
                f"building the GRUB ISO failed ({script} exited {proc.returncode}):\n{proc.stdout.rstrip()}",
            )
        os.replace(tmp, iso)
    finally:
        tmp.unlink(missing_ok=True)
    prune_iso_cache(cache, keep=iso)
    return iso


#: ISOs kept in the cache (~10 MB each, plus a guest's files): every ELF rebuild, command line and
#: guest makes a new one.
ISO_CACHE_KEEP = 16


def prune_iso_cache(cache: Path, keep: Path) -> None:
    """Remove all but the ISO_CACHE_KEEP most recently built ISOs (never ``keep``)."""
    isos = sorted(cache.glob("*.iso"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in isos[ISO_CACHE_KEEP:]:
        if old != keep:
            old.unlink(missing_ok=True)
