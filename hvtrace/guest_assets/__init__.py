"""Linux guest assets: Debian's kernel and a busybox initramfs, fetched at set-up time, never committed.

``fetch_assets()`` downloads two Debian packages with ``apt-get download`` (nothing is installed into
the system): the kernel metapackage ``linux-image-amd64`` resolved to the concrete
``linux-image-<abi>-amd64`` it depends on (its ``/boot/vmlinuz-<abi>-amd64`` is a bzImage), and
``busybox-static`` (``/bin/busybox``, statically linked). Only those two files are kept, with a
manifest, in ``<repo>/build/assets/`` (git-ignored); a second call reads the manifest and touches no
network.

``build_initramfs()`` writes a gzip-compressed newc cpio (pure Python) whose ``/init`` mounts proc and
sysfs, prints one :data:`MARKER` line on the console and powers off. ``boot_bare_qemu()`` boots the
kernel directly in QEMU TCG (no hypervisor): the baseline the hypervisor-hosted boot is compared with.

One job a module: :mod:`.apt` (resolve, download, unpack), :mod:`.cache` (the manifest-checked
cache, :func:`fetch_assets`, :func:`fetch_memtest`), :mod:`.initramfs` (the newc writer and /init),
:mod:`.bare_qemu` (the baseline boot), :mod:`.cli` (``python -m hvtrace.guest_assets
fetch|initramfs|boot``, ``--help`` for each).
"""

from . import apt, cache
from .apt import KERNEL_METAPACKAGE, PackageInfo, kernel_dependency, parse_control
from .bare_qemu import BASE_APPEND, QEMU_CPU, BareBoot, Marker, bare_qemu_argv, boot_bare_qemu, parse_marker
from .cache import BUSYBOX_PACKAGE, GuestAssets, assets_dir, fetch_assets, fetch_memtest
from .cli import main
from .errors import AssetsUnavailable, GuestAssetError, GuestBootError
from .initramfs import (
    APPLETS,
    CMD_DONE,
    CMD_VAR,
    INIT_SCRIPT,
    INITRAMFS_NAME,
    MARKER,
    MARKER_RE,
    CpioEntry,
    build_initramfs,
    ensure_initramfs,
    initramfs_bytes,
    newc_archive,
    newc_member,
)

__all__ = [
    "APPLETS",
    "BASE_APPEND",
    "BUSYBOX_PACKAGE",
    "CMD_DONE",
    "CMD_VAR",
    "INITRAMFS_NAME",
    "INIT_SCRIPT",
    "KERNEL_METAPACKAGE",
    "MARKER",
    "MARKER_RE",
    "QEMU_CPU",
    "AssetsUnavailable",
    "BareBoot",
    "CpioEntry",
    "GuestAssetError",
    "GuestAssets",
    "GuestBootError",
    "Marker",
    "PackageInfo",
    "apt",
    "assets_dir",
    "bare_qemu_argv",
    "boot_bare_qemu",
    "build_initramfs",
    "cache",
    "ensure_initramfs",
    "fetch_assets",
    "fetch_memtest",
    "initramfs_bytes",
    "kernel_dependency",
    "main",
    "newc_archive",
    "newc_member",
    "parse_control",
    "parse_marker",
]
