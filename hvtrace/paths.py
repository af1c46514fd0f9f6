"""Where things are: in a checkout, the repo root (the package lives at <root>/hvtrace) and what hvtrace
reads and builds below it; installed from a wheel, the built files the wheel carries (hvtrace/data/)
and a per-user cache.

Users never pass paths: every path hvtrace needs is derived from the root found here, and each is
named once (the image `hvtrace run` boots, gdb loads and the trace readers take symbols from is
:func:`image_path`).
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
#: What a wheel carries instead of the sources (setup.py's build_py copies it): the built image
#: hvtrace.elf, guests/*.elf, mkiso.sh and abi.h.
DATA_DIR = PACKAGE_DIR / "data"


def checkout_root() -> Path | None:
    """The checkout this package runs from (editable install or in place), None when installed."""
    root = PACKAGE_DIR.parent
    return root if (root / "hv").is_dir() else None


def installed() -> bool:
    """Whether hvtrace runs from a wheel (no sources: the image is the one the wheel carries)."""
    return checkout_root() is None


def repo_root() -> Path:
    """The checkout this package was installed from (editable install) or runs in."""
    root = checkout_root()
    if root is None:
        raise FileNotFoundError(f"hvtrace is installed at {PACKAGE_DIR}, not run from a checkout: no sources")
    return root


def user_cache_dir() -> Path:
    """$XDG_CACHE_HOME/hvtrace (default ~/.cache/hvtrace): what an installed hvtrace builds or fetches."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hvtrace"


def hv_dir() -> Path:
    return repo_root() / "hv"


def boot_dir() -> Path:
    return repo_root() / "boot"


def build_dir() -> Path:
    """hv/build in a checkout; the wheel's data directory when installed."""
    return DATA_DIR if installed() else hv_dir() / "build"


def image_path() -> Path:
    """The multiboot hypervisor image `make -C hv` produces (QEMU -kernel, GRUB, and gdb symbols)."""
    return build_dir() / "hvtrace.elf"


def guests_dir() -> Path:
    """The test guests `make -C hv` builds (mbtest.elf, chaos.elf, ...)."""
    return build_dir() / "guests"


def iso_cache_dir() -> Path:
    return user_cache_dir() / "iso-cache" if installed() else build_dir() / "iso-cache"


def assets_dir() -> Path:
    """The git-ignored cache of the downloaded Linux guest files: <repo>/build/assets, or the user cache."""
    return user_cache_dir() / "assets" if installed() else repo_root() / "build" / "assets"


def mkiso_script() -> Path:
    """boot/mkiso.sh ELF OUT_ISO "CMDLINE" [GUEST ARGS [INITRD]]: the GRUB ISO builder the Bochs back
    end boots (hvtrace.image.ensure_iso)."""
    return DATA_DIR / "mkiso.sh" if installed() else boot_dir() / "mkiso.sh"


def abi_header() -> Path:
    return DATA_DIR / "abi.h" if installed() else hv_dir() / "include" / "hv" / "abi.h"


def gdb_extension() -> Path:
    """The script gdb sources to load the hv-* commands (gdbext/hvtrace_gdb.py; installed as
    hvtrace/gdbext/)."""
    if installed():
        return PACKAGE_DIR / "gdbext" / "hvtrace_gdb.py"
    return repo_root() / "gdbext" / "hvtrace_gdb.py"
