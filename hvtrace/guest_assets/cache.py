"""The cache of guest files in ``<repo>/build/assets``: fetched once with apt, checked by a manifest
of sha256 digests, one fetch at a time per directory."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from hvtrace import paths

from . import apt
from .apt import PackageInfo, deb_info, download, extract_members, resolve_kernel_package
from .errors import AssetsUnavailable, GuestAssetError

#: Debian package with a statically linked /bin/busybox.
BUSYBOX_PACKAGE = "busybox-static"
MANIFEST = "manifest.json"
MANIFEST_VERSION = 1


@dataclass(frozen=True)
class GuestAssets:
    """Paths of the extracted files and the package versions they came from."""

    kernel: Path
    busybox: Path
    kernel_package: PackageInfo
    busybox_package: PackageInfo
    metapackage: PackageInfo

    def describe(self) -> str:
        return (
            f"kernel  {self.kernel} ({self.kernel_package.package} {self.kernel_package.version}, "
            f"via {self.metapackage.package} {self.metapackage.version})\n"
            f"busybox {self.busybox} ({self.busybox_package.package} {self.busybox_package.version})"
        )


def assets_dir() -> Path:
    """``<repo>/build/assets``: the git-ignored cache of the downloaded guest files (installed: the
    user's cache, :func:`hvtrace.paths.assets_dir`)."""
    return paths.assets_dir()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """One fetch at a time per cache directory (parallel test runs, a second shell)."""
    with open(directory / ".lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def load_cached(cache: Path) -> GuestAssets | None:
    """The assets recorded in ``cache``'s manifest if every file is there and unchanged; else None."""
    try:
        manifest = json.loads((cache / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    try:
        if manifest["version"] != MANIFEST_VERSION:
            return None
        files = manifest["files"]
        for name, digest in files.items():
            if _sha256(cache / name) != digest:
                return None
        pkgs = {key: PackageInfo(**value) for key, value in manifest["packages"].items()}
        return GuestAssets(
            kernel=cache / manifest["kernel"],
            busybox=cache / manifest["busybox"],
            kernel_package=pkgs["kernel"],
            busybox_package=pkgs["busybox"],
            metapackage=pkgs["metapackage"],
        )
    except (OSError, KeyError, TypeError):
        return None


def _fetch_into(cache: Path, log: Callable[[str], None]) -> GuestAssets:
    meta, kernel_pkg = resolve_kernel_package()
    log(f"{meta.package} {meta.version} -> {kernel_pkg.package} {kernel_pkg.version}")
    with tempfile.TemporaryDirectory(prefix="fetch-", dir=cache) as tmp:
        work = Path(tmp)
        kernel_deb = download(kernel_pkg.package, kernel_pkg.version, work)
        busybox_deb = download(BUSYBOX_PACKAGE, "", work)
        kernel_info, busybox_info = deb_info(kernel_deb), deb_info(busybox_deb)
        log(f"downloaded {kernel_deb.name}, {busybox_deb.name}")

        kernels = extract_members(
            kernel_deb, lambda n: re.fullmatch(r"boot/vmlinuz-[^/]+", n) is not None, work
        )
        if len(kernels) != 1:
            raise GuestAssetError(
                f"{kernel_info.package} {kernel_info.version} holds {len(kernels)} /boot/vmlinuz-* files "
                "(expected 1)"
            )
        busyboxes = extract_members(busybox_deb, lambda n: n == "bin/busybox", work)
        if len(busyboxes) != 1:
            raise GuestAssetError(f"{busybox_info.package} {busybox_info.version} holds no /bin/busybox")
        kernel_src, busybox_src = kernels[0], busyboxes[0]
        if kernel_src.read_bytes()[0x202:0x206] != b"HdrS":
            raise GuestAssetError(f"{kernel_src.name} from {kernel_info.package} is not a bzImage")
        if busybox_src.read_bytes()[:4] != b"\x7fELF":
            raise GuestAssetError(f"/bin/busybox from {busybox_info.package} is not an ELF file")

        for old in cache.glob("vmlinuz-*"):
            old.unlink()
        kernel = cache / kernel_src.name
        busybox = cache / "busybox"
        os.replace(kernel_src, kernel)
        os.replace(busybox_src, busybox)
    manifest = {
        "version": MANIFEST_VERSION,
        "kernel": kernel.name,
        "busybox": busybox.name,
        "packages": {
            "metapackage": vars(meta),
            "kernel": vars(kernel_info),
            "busybox": vars(busybox_info),
        },
        "files": {kernel.name: _sha256(kernel), busybox.name: _sha256(busybox)},
    }
    tmp_manifest = cache / f"{MANIFEST}.tmp"
    tmp_manifest.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp_manifest, cache / MANIFEST)
    return GuestAssets(kernel, busybox, kernel_info, busybox_info, meta)


def fetch_assets(
    cache: Path | None = None, *, refresh: bool = False, log: Callable[[str], None] | None = None
) -> GuestAssets:
    """The kernel and busybox, from ``cache`` (default :func:`assets_dir`) or fetched into it.

    A cache hit runs no command at all. On a miss the packages are resolved and downloaded with apt;
    if that fails and we are root, ``apt-get update`` runs once and the fetch is retried (as a user
    the error says to run it). Raises :class:`AssetsUnavailable` (apt failed: no network, no package
    lists), :class:`GuestAssetError` (unexpected package contents) or LaunchError(TOOL_MISSING).
    """
    say = log or (lambda _msg: None)
    cache = cache if cache is not None else assets_dir()
    cache.mkdir(parents=True, exist_ok=True)
    if not refresh and (hit := load_cached(cache)) is not None:
        return hit
    with _locked(cache):
        if not refresh and (hit := load_cached(cache)) is not None:
            return hit
        try:
            return _fetch_into(cache, say)
        except AssetsUnavailable as first:
            if not apt.is_root():
                raise AssetsUnavailable(f"{first.message}\n{apt.update_hint()}") from first
            say(f"{first.message.splitlines()[0]}; running `apt-get update` and retrying")
        try:
            apt.apt_update()
            return _fetch_into(cache, say)
        except AssetsUnavailable as second:
            raise AssetsUnavailable(
                f"{second.message}\n(after `apt-get update`: is the Debian mirror reachable?)"
            ) from second


MEMTEST_PACKAGE = "memtest86+"
MEMTEST_BIN = "memtest86+x64.bin"


def fetch_memtest(cache: Path | None = None) -> Path:
    """Debian's memtest86+ x86-64 image, a bzImage that is not relocatable (it runs at 1 MiB, its
    code32_start), from ``cache`` (default :func:`assets_dir`) or downloaded with apt into it."""
    cache = cache if cache is not None else assets_dir()
    cache.mkdir(parents=True, exist_ok=True)
    out = cache / MEMTEST_BIN
    if out.is_file():
        return out
    with _locked(cache):
        if out.is_file():
            return out
        with tempfile.TemporaryDirectory(prefix="fetch-", dir=cache) as tmp:
            work = Path(tmp)
            try:
                deb = download(MEMTEST_PACKAGE, "", work)
            except AssetsUnavailable:
                if not apt.is_root():
                    raise
                apt.apt_update()
                deb = download(MEMTEST_PACKAGE, "", work)
            got = extract_members(deb, lambda n: n == f"boot/{MEMTEST_BIN}", work)
            if len(got) != 1 or got[0].read_bytes()[0x202:0x206] != b"HdrS":
                raise GuestAssetError(f"{deb.name} holds no bzImage boot/{MEMTEST_BIN}")
            os.replace(got[0], out)
    return out
