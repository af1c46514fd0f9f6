"""Host tools hvtrace needs, and the Debian package that provides each."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from hvtrace.exitcodes import ExitCode, LaunchError

#: command -> Debian package that installs it.
TOOL_PACKAGES: dict[str, str] = {
    "qemu-system-x86_64": "qemu-system-x86",
    "bochs": "bochs",
    "gdb": "gdb",
    "grub-mkrescue": "grub-common",
    "xorriso": "xorriso",
    "mformat": "mtools",
    "make": "make",
    "gcc": "build-essential",
    "nasm": "nasm",
    "as": "binutils",
    "ld": "binutils",
    "tmux": "tmux",
    "apt-get": "apt",
    "apt-cache": "apt",
    "dpkg-deb": "dpkg",
}

#: data files -> Debian package that installs them.
FILE_PACKAGES: dict[Path, str] = {
    Path("/usr/share/bochs/BIOS-bochs-latest"): "bochsbios",
    Path("/usr/share/vgabios/vgabios.bin"): "vgabios",
    Path("/usr/lib/grub/i386-pc"): "grub-pc-bin",
}

BOCHS_BIOS = Path("/usr/share/bochs/BIOS-bochs-latest")
VGA_BIOS = Path("/usr/share/vgabios/vgabios.bin")
GRUB_I386_PC = Path("/usr/lib/grub/i386-pc")


def find_tool(name: str) -> str | None:
    """Absolute path of a command in PATH, or None."""
    return shutil.which(name)


def require_tool(name: str, why: str = "") -> str:
    """Path of ``name``; raise LaunchError(TOOL_MISSING) naming the tool and its package otherwise."""
    path = find_tool(name)
    if path is None:
        pkg = TOOL_PACKAGES.get(name, name)
        purpose = f" (needed {why})" if why else ""
        raise LaunchError(
            ExitCode.TOOL_MISSING,
            f"required tool '{name}' not found in PATH{purpose}; install it with: apt-get install {pkg}",
        )
    return path


def require_file(path: Path, why: str = "") -> Path:
    """``path`` if it exists; raise LaunchError(TOOL_MISSING) naming the providing package otherwise."""
    if not path.exists():
        pkg = FILE_PACKAGES.get(path, "?")
        purpose = f" (needed {why})" if why else ""
        raise LaunchError(
            ExitCode.TOOL_MISSING,
            f"required file {path} is missing{purpose}; install it with: apt-get install {pkg}",
        )
    return path


def run_tool(argv: Sequence[str], *, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    """Run a host tool to completion: no stdin, stdout and stderr together as text (undecodable bytes
    replaced), never raising on its exit status (the caller reads ``returncode`` and ``stdout``)."""
    return subprocess.run(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        timeout=timeout,
        check=False,
    )
