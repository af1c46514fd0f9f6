"""Debian's kernel with the busybox initramfs boots to the marker line in bare QEMU TCG (no hypervisor).

The baseline the hypervisor-hosted Linux boot will be compared with. The assets come from Debian's
packages at set-up time (``./bootstrap setup`` fetches them into build/assets/); these tests skip,
naming the reason, only when apt cannot provide them (no network, not a Debian system), and fail
in CI (the ``linux`` fixture in conftest.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hvtrace import guest_assets as ga
from hvtrace.exitcodes import ExitCode
from hvtrace.launch import procs
from tests.integration.conftest import Linux

pytestmark = [pytest.mark.slow, pytest.mark.qemu]


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


def test_boots_to_marker_with_two_cpus(linux: Linux) -> None:
    assets, initrd = linux
    console: list[str] = []
    result = ga.boot_bare_qemu(
        assets.kernel, initrd, cpus=2, memory_mb=512, timeout=240, append='hvtrace_cmd="uname -r"',
        on_line=console.append,
    )  # fmt: skip
    shown = "\n".join(console)
    marker = ga.parse_marker(result.marker_line)
    assert marker == ga.Marker(nproc=2, cpus_online="0-1"), shown
    # The optional command ran in the guest before /init reported: Debian's kernel release (the vmlinuz
    # name's suffix, an outside source) printed by `uname -r`, then its status, then the marker.
    release = assets.kernel.name.removeprefix("vmlinuz-")
    at = {line: i for i, line in enumerate(console)}
    assert release in at, shown
    assert f"{ga.CMD_DONE} status=0" in at, shown
    marker_at = next(i for i, line in enumerate(console) if result.marker_line in line)
    assert at[release] < at[f"{ga.CMD_DONE} status=0"] < marker_at, shown
    assert qemu_pids_using(initrd) == [], "QEMU left running"


def test_timeout_is_a_clear_error_and_stops_qemu(linux: Linux) -> None:
    assets, initrd = linux
    with pytest.raises(ga.GuestBootError) as info:
        ga.boot_bare_qemu(assets.kernel, initrd, cpus=1, timeout=1.0)
    assert info.value.code == ExitCode.TIMEOUT
    assert f"no {ga.MARKER} line within 1 s" in info.value.message
    assert str(assets.kernel) in info.value.message
    assert qemu_pids_using(initrd) == [], "QEMU left running after the timeout"
