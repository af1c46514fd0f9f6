"""``python -m hvtrace.guest_assets fetch|initramfs|boot``: the assets from the shell (bootstrap
runs ``fetch``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from hvtrace.exitcodes import LaunchError

from .bare_qemu import boot_bare_qemu
from .cache import fetch_assets
from .initramfs import INITRAMFS_NAME, build_initramfs, ensure_initramfs


def _err(msg: str) -> None:
    print(f"hvtrace: {msg}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hvtrace.guest_assets", description="Linux guest assets (Debian kernel, busybox)"
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_fetch = sub.add_parser("fetch", help="download + extract the kernel and busybox (cached)")
    p_fetch.add_argument("--refresh", action="store_true", help="fetch again even when cached")
    p_init = sub.add_parser("initramfs", help="build the busybox initramfs (fetches when needed)")
    p_init.add_argument("-o", "--output", type=Path, help=f"default: <assets>/{INITRAMFS_NAME}")
    p_boot = sub.add_parser("boot", help="boot the kernel in bare QEMU TCG up to the marker line")
    p_boot.add_argument("--cpus", type=int, default=2)
    p_boot.add_argument("--memory", type=int, default=512, help="MiB")
    p_boot.add_argument("--timeout", type=float, default=180.0)
    p_boot.add_argument("--append", default="", help="extra kernel command-line text")
    p_boot.add_argument("--verbose", action="store_true", help="show the console")
    args = parser.parse_args(argv)
    try:
        assets = fetch_assets(refresh=getattr(args, "refresh", False), log=_err)
        if args.cmd == "fetch":
            print(assets.describe())
            return 0
        if args.cmd == "initramfs":
            out = build_initramfs(assets.busybox, args.output) if args.output else ensure_initramfs(assets)
            print(out)
            return 0
        initrd = ensure_initramfs(assets)
        echo: Callable[[str], None] | None = print if args.verbose else None
        result = boot_bare_qemu(
            assets.kernel, initrd, args.cpus, args.memory, args.timeout, append=args.append, on_line=echo
        )
        print(f"{result.marker_line}  ({result.seconds:.2f} s)")
        return 0
    except LaunchError as e:
        _err(f"error: {e.message}")
        return e.code
