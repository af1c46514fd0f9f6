"""The guest's own exit and the user's QEMU options, end to end.

A loaded guest (mbtest with ``debug_exit=N``) that writes the isa-debug-exit port (0xF4, the
convention of QEMU test kernels) ends the run on both back ends: the hypervisor's status line says
``reason=guest_debug_exit`` with the guest's value apart (``guest_code=N``), and `hvtrace run` exits
with N as it would with a GUEST_EXIT status. A status line the guest prints itself never counts.
``--cpu-model`` / ``--qemu-arg`` reach QEMU; what QEMU refuses is exit 70 with QEMU's own words.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hvtrace.exitcodes import ExitCode
from tests.integration.conftest import RunFn, assert_clean

pytestmark = [pytest.mark.slow]

FAKE = "HVTRACE STATUS code=0 result=pass reason=guest_pass"


@pytest.mark.parametrize(
    ("backend", "vendor"),
    [
        pytest.param("qemu", "svm", marks=pytest.mark.qemu),
        pytest.param("bochs", "vmx", marks=pytest.mark.bochs),
    ],
)
def test_guest_debug_exit_ends_the_run_with_the_guests_code(
    hvtrace_run: RunFn, mbtest: Path, backend: str, vendor: str
) -> None:
    run = hvtrace_run("run", "--backend", backend, "--guest", str(mbtest), "--append", "mbtest debug_exit=5")
    shown = run.describe()
    assert run.returncode == 5, shown
    lines = run.stdout.splitlines()
    assert "mbtest: all steps passed" in lines, shown
    assert "guest: CPU 0: debug exit (isa-debug-exit port 0xf4, 1 byte) code 5" in lines, shown
    # the exit was recorded before the run ended: it is in the exit counts
    assert any(line.startswith(f"{vendor}: CPU 0 exits:") and "IO" in line for line in lines), shown
    # the hypervisor's own status (0) and the guest's code, apart
    assert "HVTRACE STATUS code=0 result=pass reason=guest_debug_exit guest_code=5" in lines, shown
    assert "hvtrace: guest exit through isa-debug-exit: reason=guest_debug_exit code=5" in run.stderr, shown
    assert "hypervisor status 5" not in run.output, shown
    assert "note:" not in run.stderr, shown  # QEMU left through the hypervisor's own isa-debug-exit
    assert run.kept_dir is None, shown  # the guest's code is no failure of the emulator
    assert_clean(run)


@pytest.mark.parametrize(
    "backend", [pytest.param("qemu", marks=pytest.mark.qemu), pytest.param("bochs", marks=pytest.mark.bochs)]
)
def test_a_status_line_the_guest_prints_does_not_masquerade(
    hvtrace_run: RunFn, mbtest: Path, backend: str
) -> None:
    run = hvtrace_run(
        "run", "--backend", backend, "--guest", str(mbtest), "--append", "mbtest fake_status debug_exit=9"
    )
    shown = run.describe()
    lines = run.stdout.splitlines()
    assert FAKE in lines, shown  # the guest did print its fake pass line first
    assert lines.index(FAKE) < lines.index("mbtest: debug exit 0x00000009"), shown
    assert run.returncode == 9, shown
    assert "hypervisor status 0 (PASS) result=pass reason=guest_pass" not in run.output, shown
    assert_clean(run)


@pytest.mark.qemu
def test_a_status_line_the_guest_prints_before_hanging_is_not_taken(hvtrace_run: RunFn, mbtest: Path) -> None:
    """A status line on COM1 is the guest's output: never a candidate for the run's status (only the
    hypervisor's private channel gives that); here the guest hangs: a timeout, not a pass."""
    run = hvtrace_run("run", "--guest", str(mbtest), "--append", "mbtest fake_status", "--timeout", "15")
    shown = run.describe()
    assert FAKE in run.stdout.splitlines(), shown
    assert run.returncode == ExitCode.TIMEOUT, shown
    assert "ignored a status line" not in run.stderr, shown  # it was never taken for one
    assert_clean(run)


@pytest.mark.qemu
def test_a_four_byte_code_beyond_the_status_range_exits_fail(hvtrace_run: RunFn, mbtest: Path) -> None:
    run = hvtrace_run("run", "--guest", str(mbtest), "--append", "mbtest debug_exit=300")
    shown = run.describe()
    assert "guest: CPU 0: debug exit (isa-debug-exit port 0xf4, 4 bytes) code 300" in run.stdout, shown
    assert "reason=guest_debug_exit guest_code=300" in run.stdout, shown
    assert run.returncode == 1, shown  # 64 and up are hvtrace's own exit codes
    assert "the guest's code 300 is beyond the status range 0..63: exit code 1" in run.stderr, shown
    assert_clean(run)


# ----------------------------------------------------------------------- --cpu-model / --qemu-arg
CPUID_MIRRORS_CHECKED = (
    "mbtest: step cpuid: PASS hidden, OSXSAVE and OSPKE = guest CR4 (XSAVE and PKU: set and clear checked)"
)


@pytest.mark.qemu
def test_cpu_model_max_and_qemu_args_boot_a_guest(hvtrace_run: RunFn, mbtest: Path) -> None:
    run = hvtrace_run(
        "run", "--cpu-model", "max", "--qemu-arg=-no-reboot", "--qemu-arg", "-device virtio-rng-pci",
        "--guest", str(mbtest), "--append", "mbtest arg=1",
    )  # fmt: skip
    assert run.returncode == 0, run.describe()
    assert "mbtest: all steps passed" in run.stdout, run.describe()
    # QEMU's "max" model has XSAVE and PKU under TCG: mbtest sets CR4.OSXSAVE and CR4.PKE and sees
    # CPUID.1:ECX.OSXSAVE and CPUID.7:ECX.OSPKE follow (on qemu64 only their clear state can be checked)
    assert CPUID_MIRRORS_CHECKED in run.stdout, run.describe()
    assert "HVTRACE STATUS code=0 result=pass reason=guest_pass" in run.stdout
    assert_clean(run)


@pytest.mark.qemu
def test_cpu_model_with_features_boots_the_self_test(hvtrace_run: RunFn) -> None:
    run = hvtrace_run("run", "--cpus", "2", "--cpu-model", "qemu64,+svm,+popcnt", "--qemu-arg=-no-reboot")
    assert run.returncode == 0, run.describe()
    assert "HVTRACE STATUS code=0 result=pass reason=ok" in run.stdout
    assert_clean(run)


@pytest.mark.qemu
def test_a_feature_tcg_drops_is_shown(hvtrace_run: RunFn) -> None:
    """The issue's example: QEMU 7.2's TCG has no x2APIC; QEMU warns and runs without it."""
    run = hvtrace_run("run", "--cpu-model", "qemu64,+x2apic")
    assert run.returncode == 0, run.describe()
    assert "note: QEMU said: qemu-system-x86_64: warning: TCG doesn't support requested feature" in run.stderr
    assert "x2apic" in run.stderr
    assert_clean(run)


@pytest.mark.qemu
@pytest.mark.parametrize(
    ("options", "qemu_says"),
    [
        (["--cpu-model", "nosuchcpu"], "unable to find CPU model 'nosuchcpu'"),
        (["--qemu-arg", "-device nosuchdev"], "'nosuchdev' is not a valid device model name"),
    ],
)
def test_what_qemu_refuses_is_exit_70_with_its_message(
    hvtrace_run: RunFn, options: list[str], qemu_says: str
) -> None:
    run = hvtrace_run("run", *options)
    assert run.returncode == ExitCode.EMULATOR_FAILED, run.describe()
    assert qemu_says in run.stderr, run.describe()
    assert "QEMU refused the configuration" in run.stderr
    assert_clean(run)


@pytest.mark.qemu
def test_capture_reports_qemus_refusal_as_exit_70(hvtrace_run: RunFn, tmp_path: Path) -> None:
    out = tmp_path / "x.hvt"
    run = hvtrace_run("capture", "--backend", "qemu", "--cpu-model", "nosuchcpu", "--quiet", "-o", str(out))
    assert run.returncode == ExitCode.EMULATOR_FAILED, run.describe()
    assert "unable to find CPU model 'nosuchcpu'" in run.stderr, run.describe()
    assert not out.exists()
    assert_clean(run)


@pytest.mark.parametrize(
    ("backend", "vendor"),
    [
        pytest.param("qemu", "svm", marks=pytest.mark.qemu),
        pytest.param("bochs", "vmx", marks=pytest.mark.bochs),
    ],
)
def test_rep_outsb_to_the_debug_exit_port_is_emulated(
    hvtrace_run: RunFn, mbtest: Path, backend: str, vendor: str
) -> None:
    """String I/O to an intercepted port (REP OUTSB, one byte from memory) is emulated through the
    guest's paging, as OUT is: the run ends with the guest's code (it used to stop the hypervisor)."""
    run = hvtrace_run(
        "run", "--backend", backend, "--guest", str(mbtest), "--append", "mbtest debug_exit=7 outs"
    )
    shown = run.describe()
    assert run.returncode == 7, shown
    lines = run.stdout.splitlines()
    assert "guest: CPU 0: debug exit (isa-debug-exit port 0xf4, 1 byte) code 7" in lines, shown
    assert "HVTRACE STATUS code=0 result=pass reason=guest_debug_exit guest_code=7" in lines, shown
    assert not any("string_io" in line for line in lines), shown
    assert_clean(run)
