"""Where things are: the repo root (the package lives at <root>/hvtrace) and what hvtrace reads and
builds below it.

Users never pass paths: every path hvtrace needs is derived from the root found here, and each is
named once (the image `hvtrace run` boots, gdb loads and the trace readers take symbols from is
:func:`image_path`).
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def repo_root() -> Path:
    """The checkout this package was installed from (editable install) or runs in."""
    root = PACKAGE_DIR.parent
    if not (root / "hv").is_dir():
        raise FileNotFoundError(
            f"hvtrace expects the hypervisor sources in {root / 'hv'}: run hvtrace from its checkout "
            "(pip install -e .)"
        )
    return root


def hv_dir() -> Path:
    return repo_root() / "hv"


def boot_dir() -> Path:
    return repo_root() / "boot"


def build_dir() -> Path:
    return hv_dir() / "build"


def image_path() -> Path:
    """The multiboot hypervisor image `make -C hv` produces (QEMU -kernel, GRUB, and gdb symbols)."""
    return build_dir() / "hvtrace.elf"


def iso_cache_dir() -> Path:
    return build_dir() / "iso-cache"


def mkiso_script() -> Path:
    """boot/mkiso.sh ELF OUT_ISO "CMDLINE" [GUEST ARGS [INITRD]]: the GRUB ISO builder the Bochs back
    end boots (hvtrace.image.ensure_iso)."""
    return boot_dir() / "mkiso.sh"


def abi_header() -> Path:
    return hv_dir() / "include" / "hv" / "abi.h"


def gdb_extension() -> Path:
    """The script gdb sources to load the hv-* commands (gdbext/hvtrace_gdb.py)."""
    return repo_root() / "gdbext" / "hvtrace_gdb.py"
