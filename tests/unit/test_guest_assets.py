"""Fetching the Linux guest assets, against fake apt-cache / apt-get / dpkg-deb on PATH (no network)."""

from __future__ import annotations

import io
import json
import os
import stat
import tarfile
from pathlib import Path

import pytest

from hvtrace import guest_assets as ga
from hvtrace.exitcodes import ExitCode, LaunchError

KERNEL = b"\0" * 0x202 + b"HdrS" + b"kernel" * 100
BUSYBOX = b"\x7fELF" + b"busybox" * 100

META_SHOW = """Package: linux-image-amd64
Source: linux-signed-amd64 (6.1.99+1)
Version: 6.1.99-1
Depends: linux-image-6.1.0-99-amd64 (= 6.1.99-1)
Description: Linux for 64-bit PCs (meta-package)

"""

APT_CACHE = """#!/bin/sh
echo "apt-cache $*" >> "$FAKE/calls"
[ -f "$FAKE/fail-apt-cache" ] && { echo "E: No packages found" >&2; exit 100; }
cat "$FAKE/meta.show"
"""

APT_GET = """#!/bin/sh
echo "apt-get $*" >> "$FAKE/calls"
if [ "$1" = update ]; then
    [ -f "$FAKE/update-fixes" ] && rm -f "$FAKE/fail-apt-cache" "$FAKE/fail-download"
    exit 0
fi
if [ -f "$FAKE/fail-download" ]; then
    echo "E: Failed to fetch http://mirror/x.deb  404  Not Found" >&2
    exit 100
fi
for last; do :; done
case "$last" in
    linux-image-6.1.0-99-amd64=6.1.99-1)
        cp "$FAKE/kernel.deb" ./linux-image-6.1.0-99-amd64_6.1.99-1_amd64.deb ;;
    busybox-static) cp "$FAKE/busybox.deb" ./busybox-static_1%3a1.35.0-4_amd64.deb ;;
    *) echo "E: Unable to locate package $last" >&2; exit 100 ;;
esac
"""

DPKG_DEB = """#!/bin/sh
echo "dpkg-deb $*" >> "$FAKE/calls"
case "$1" in
    -f) case "$2" in
            *linux-image*) printf 'Package: linux-image-6.1.0-99-amd64\\nVersion: 6.1.99-1\\n' ;;
            *) printf 'Package: busybox-static\\nVersion: 1:1.35.0-4\\n' ;;
        esac ;;
    --fsys-tarfile) cat "$2" ;;
    *) exit 2 ;;
esac
"""


def tar_of(files: dict[str, bytes]) -> bytes:
    """A data.tar as dpkg-deb --fsys-tarfile prints it (./-prefixed names, directories first)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        dirs = sorted({str(Path(n).parent) for n in files})
        for d in dirs:
            info = tarfile.TarInfo(f"./{d}")
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(f"./{name}")
            info.size = len(data)
            info.mode = 0o755 if name.startswith("bin/") else 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory of fake apt/dpkg tools, first on PATH; ``calls`` logs each invocation."""
    fake = tmp_path / "fake"
    fake.mkdir()
    for name, text in (("apt-cache", APT_CACHE), ("apt-get", APT_GET), ("dpkg-deb", DPKG_DEB)):
        p = fake / name
        p.write_text(text)
        p.chmod(p.stat().st_mode | stat.S_IXUSR)
    (fake / "meta.show").write_text(META_SHOW)
    kernel_files = {
        "boot/vmlinuz-6.1.0-99-amd64": KERNEL,
        "boot/config-6.1.0-99-amd64": b"CONFIG_X=y\n",
        "lib/modules/6.1.0-99-amd64/kernel/x.ko": b"module",
    }
    (fake / "kernel.deb").write_bytes(tar_of(kernel_files))
    (fake / "busybox.deb").write_bytes(tar_of({"bin/busybox": BUSYBOX, "usr/share/doc/x": b"doc"}))
    monkeypatch.setenv("FAKE", str(fake))
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    return fake


def calls(fake: Path) -> list[str]:
    log = fake / "calls"
    return log.read_text().splitlines() if log.exists() else []


def test_kernel_dependency_parsing() -> None:
    assert ga.kernel_dependency("linux-image-6.1.0-56-amd64 (= 6.1.192-2)") == (
        "linux-image-6.1.0-56-amd64",
        "6.1.192-2",
    )
    assert ga.kernel_dependency("kmod, linux-image-6.1.0-9-amd64-unsigned | linux-image-6.1.0-9-amd64") == (
        "linux-image-6.1.0-9-amd64-unsigned",
        None,
    )
    with pytest.raises(ga.GuestAssetError, match=r"linux-image-amd64 depends on no linux-image-\*"):
        ga.kernel_dependency("kmod, linux-base (>= 4.3~)")


def test_parse_control_first_stanza_with_continuations() -> None:
    text = "Package: a\nDepends: x,\n y\nVersion: 1\n\nPackage: b\n"
    assert ga.parse_control(text) == {"Package": "a", "Depends": "x,\ny", "Version": "1"}


def test_fetch_extracts_and_second_call_runs_nothing(fake: Path, tmp_path: Path) -> None:
    cache = tmp_path / "assets"
    assets = ga.fetch_assets(cache)
    assert assets.kernel == cache / "vmlinuz-6.1.0-99-amd64"
    assert assets.kernel.read_bytes() == KERNEL
    assert assets.busybox.read_bytes() == BUSYBOX
    assert os.access(assets.busybox, os.X_OK)
    assert assets.metapackage == ga.PackageInfo("linux-image-amd64", "6.1.99-1")
    assert assets.kernel_package == ga.PackageInfo("linux-image-6.1.0-99-amd64", "6.1.99-1")
    assert assets.busybox_package == ga.PackageInfo("busybox-static", "1:1.35.0-4")
    # Only the two files and the manifest stay (no .deb, no modules, no temp dirs).
    assert sorted(p.name for p in cache.iterdir()) == [
        ".lock",
        "busybox",
        "manifest.json",
        assets.kernel.name,
    ]
    assert json.loads((cache / "manifest.json").read_text())["packages"]["kernel"]["version"] == "6.1.99-1"
    first = calls(fake)
    assert any(c.startswith("apt-get download") and "linux-image-6.1.0-99-amd64=6.1.99-1" in c for c in first)

    (fake / "fail-apt-cache").touch()
    (fake / "fail-download").touch()
    again = ga.fetch_assets(cache)
    assert again == assets
    assert calls(fake) == first, "a cache hit must run no apt command"


def test_corrupted_cache_is_fetched_again(fake: Path, tmp_path: Path) -> None:
    cache = tmp_path / "assets"
    assets = ga.fetch_assets(cache)
    assets.busybox.write_bytes(b"truncated")
    assert ga.fetch_assets(cache).busybox.read_bytes() == BUSYBOX
    downloads = [c for c in calls(fake) if c.startswith("apt-get download") and c.endswith("busybox-static")]
    assert len(downloads) == 2


def test_user_without_lists_is_told_to_run_apt_get_update(
    fake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ga.apt, "is_root", lambda: False)
    (fake / "fail-apt-cache").touch()
    with pytest.raises(ga.AssetsUnavailable) as info:
        ga.fetch_assets(tmp_path / "assets")
    msg = info.value.message
    assert "looking up linux-image-amd64" in msg
    assert "apt-cache show --no-all-versions linux-image-amd64` failed" in msg
    assert "E: No packages found" in msg
    assert "sudo apt-get update" in msg
    assert info.value.code == ExitCode.TOOL_MISSING
    assert not any(c.startswith("apt-get update") for c in calls(fake))


def test_root_runs_apt_get_update_and_retries(
    fake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ga.apt, "is_root", lambda: True)
    (fake / "fail-download").touch()
    (fake / "update-fixes").touch()
    assets = ga.fetch_assets(tmp_path / "assets")
    assert assets.kernel.read_bytes() == KERNEL
    assert "apt-get update -q" in calls(fake)


def test_root_download_failure_names_package_and_command(
    fake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ga.apt, "is_root", lambda: True)
    (fake / "fail-download").touch()
    with pytest.raises(ga.AssetsUnavailable) as info:
        ga.fetch_assets(tmp_path / "assets")
    msg = info.value.message
    assert "downloading linux-image-6.1.0-99-amd64" in msg
    assert "apt-get download" in msg
    assert "404  Not Found" in msg
    assert "after `apt-get update`" in msg
    assert not list((tmp_path / "assets").glob("fetch-*")), "temp dirs must be removed"


def test_package_without_kernel_is_a_clear_error(fake: Path, tmp_path: Path) -> None:
    (fake / "kernel.deb").write_bytes(tar_of({"lib/modules/x.ko": b"m"}))
    with pytest.raises(ga.GuestAssetError, match=r"holds 0 /boot/vmlinuz-\* files"):
        ga.fetch_assets(tmp_path / "assets")


def test_missing_tool_is_named_not_a_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(LaunchError) as info:
        ga.fetch_assets(tmp_path / "assets")
    assert info.value.code == ExitCode.TOOL_MISSING
    assert "'apt-cache' not found" in info.value.message
    assert "apt-get install apt" in info.value.message


def test_cli_reports_errors_with_exit_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(ga.cache, "assets_dir", lambda: tmp_path / "assets")
    assert ga.main(["fetch"]) == ExitCode.TOOL_MISSING
    assert "hvtrace: error: required tool 'apt-cache' not found" in capsys.readouterr().err
