"""Debian's kernel with the busybox initramfs boots to the marker line in bare QEMU TCG (no hypervisor).

The baseline the hypervisor-hosted Linux boot will be compared with. The assets come from Debian's
packages at set-up time (``./bootstrap setup`` fetches them into build/assets/); these tests skip,
naming the reason, only when apt cannot provide them (no network, not a Debian system).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hvtrace import guest_assets as ga
from hvtrace.exitcodes import ExitCode, LaunchError
from hvtrace.launch import procs

pytestmark = [pytest.mark.slow, pytest.mark.qemu]


@pytest.fixture(scope="module")
def linux(tmp_path_factory: pytest.TempPathFactory) -> tuple[ga.GuestAssets, Path]:
    """The fetched assets and an initramfs built for this test module."""
    try:
        assets = ga.fetch_assets()
    except ga.AssetsUnavailable as e:
        pytest.skip(f"Linux guest assets unavailable (apt could not fetch them):\n{e.message}")
    except LaunchError as e:
        if e.code != ExitCode.TOOL_MISSING:
            raise
        pytest.skip(f"Linux guest assets need apt/dpkg: {e.message}")
    initrd = ga.build_initramfs(assets.busybox, tmp_path_factory.mktemp("linux") / "initramfs.cpio.gz")
    return assets, initrd


def qemu_pids_using(path: Path) -> list[int]:
    """Live processes whose command line names ``path`` (our QEMU, if it survived)."""
    needle = str(path).encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if needle in cmdline and procs.pid_alive(int(entry.name)):
            pids.append(int(entry.name))
    return pids


def test_boots_to_marker_with_two_cpus(linux: tuple[ga.GuestAssets, Path]) -> None:
    assets, initrd = linux
    console: list[str] = []
    result = ga.boot_bare_qemu(
        assets.kernel, initrd, cpus=2, memory_mb=512, timeout=240, append='hvtrace_cmd="uname -r"',
        on_line=console.append,
    )  # fmt: skip
    shown = "\n".join(console)
    marker = ga.parse_marker(result.marker_line)
    assert marker == ga.Marker(nproc=2, cpus_online="0-1"), shown
    assert result.marker_line in console[-1], shown
    assert 0 < result.seconds < 240
    # The optional command ran in the guest: Debian's kernel release is the vmlinuz name's suffix.
    release = assets.kernel.name.removeprefix("vmlinuz-")
    assert release in console, shown
    assert f"{ga.CMD_DONE} status=0" in console, shown
    assert qemu_pids_using(initrd) == [], "QEMU left running"


def test_timeout_is_a_clear_error_and_stops_qemu(linux: tuple[ga.GuestAssets, Path]) -> None:
    assets, initrd = linux
    with pytest.raises(ga.GuestBootError) as info:
        ga.boot_bare_qemu(assets.kernel, initrd, cpus=1, timeout=1.0)
    assert info.value.code == ExitCode.TIMEOUT
    assert f"no {ga.MARKER} line within 1 s" in info.value.message
    assert str(assets.kernel) in info.value.message
    assert qemu_pids_using(initrd) == [], "QEMU left running after the timeout"
