"""`hvtrace image`: the ISO it writes boots from a CD-ROM through the firmware and GRUB, as on a real
machine, under QEMU (SVM back end) and Bochs (VT-x back end), to mbtest's last line and the
hypervisor's status line; bad input ends in one line and its exit code, with no file written."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from hvtrace.abi import HV_DEBUG_EXIT_PORT, HV_DEBUG_EXIT_SIZE, HvStatus
from hvtrace.exitcodes import ExitCode
from hvtrace.launch import procs
from hvtrace.launch.bochs import BOCHS, DEBUGGER_SCRIPT, bochsrc_text
from hvtrace.launch.qemu import QEMU, processors
from hvtrace.launch.qemu_options import cpu_option
from tests.components import require
from tests.integration.conftest import RunFn

ARGS = "mbtest arg=1"
GUEST_END = "mbtest: all steps passed"
STATUS = "HVTRACE STATUS code=0 result=pass reason=guest_pass"
#: QEMU's COM3 (0x3e8): where `--serial com3,57600` puts the hypervisor's console.
MOVED_CONSOLE = "com3,57600"


def write_iso(hvtrace_run: RunFn, iso: Path, mbtest: Path, serial: str | None = None) -> None:
    extra = ["--serial", serial] if serial else []
    run = hvtrace_run("image", "--iso", str(iso), "--guest", str(mbtest), "--append", ARGS, *extra)
    assert run.returncode == 0, run.describe()
    cmdline = f"console={serial}" if serial else ""
    assert run.stdout.splitlines() == [
        f"hvtrace: wrote {iso} ({iso.stat().st_size} bytes): command line {cmdline!r}, guest {mbtest.name}"
    ], run.describe()


def run_emulator(argv: list[str], cwd: Path, timeout: float) -> int:
    """Run an emulator to its end in its own process group; it is stopped in any case."""
    proc = procs.spawn(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        return proc.wait(timeout=timeout)
    finally:
        procs.stop(proc)


def lines(path: Path) -> list[str]:
    return (
        [line.rstrip("\r") for line in path.read_text(errors="replace").splitlines()] if path.exists() else []
    )


@pytest.mark.slow
@pytest.mark.qemu
def test_iso_boots_under_qemu_with_the_console_moved(
    hvtrace_run: RunFn, mbtest: Path, tmp_path: Path
) -> None:
    qemu = require(QEMU)
    iso = tmp_path / "mbtest.iso"
    write_iso(hvtrace_run, iso, mbtest, MOVED_CONSOLE)
    com = [tmp_path / f"com{n}.txt" for n in (1, 2, 3)]
    argv = [
        qemu, "-machine", "q35", *processors("tcg", cpu_option(None, "tcg"), 1, 256),
        "-cdrom", str(iso), "-boot", "d", "-display", "none", "-monitor", "none", "-no-reboot",
        *(a for f in com for a in ("-serial", f"file:{f}")),
        "-device", f"isa-debug-exit,iobase={HV_DEBUG_EXIT_PORT:#x},iosize={HV_DEBUG_EXIT_SIZE}",
    ]  # fmt: skip
    code = run_emulator(argv, tmp_path, timeout=240)
    guest, com2, moved = (lines(f) for f in com)
    shown = (
        f"exit {code}\nCOM1:\n"
        + "\n".join(guest)
        + "\nCOM2:\n"
        + "\n".join(com2)
        + "\nCOM3:\n"
        + "\n".join(moved)
    )
    assert code == 1, shown  # isa-debug-exit: (status 0 << 1) | 1
    assert f"mbtest: step multiboot: PASS {ARGS}" in guest, shown  # GRUB passed the guest's command line
    assert guest[-1] == GUEST_END, shown
    assert moved[-1] == STATUS, shown
    assert "command line: console=com3,57600" in com2, shown  # printed before the move, on COM2
    assert com2[-1] == "console: moving to the UART at 0x3e8, 57600 baud 8N1 (console=)", shown
    assert "console: UART at 0x3e8, 57600 baud 8N1 (moved from 0x2f8)" in moved, shown
    assert STATUS not in com2, shown  # the console left COM2 before the run


@pytest.mark.slow
@pytest.mark.bochs
def test_iso_boots_under_bochs(hvtrace_run: RunFn, mbtest: Path, tmp_path: Path) -> None:
    bochs = require(BOCHS)
    iso = tmp_path / "mbtest.iso"
    write_iso(hvtrace_run, iso, mbtest)
    com1, com2 = tmp_path / "com1.txt", tmp_path / "com2.txt"
    rc, script = tmp_path / "bochsrc", tmp_path / "debugger.rc"
    rc.write_text(
        bochsrc_text(
            iso=iso, cpus=1, memory_mb=256, log=tmp_path / "bochs.log", serial=com2, guest_console=com1,
            os_guest=True,
        )
    )  # fmt: skip
    script.write_text(DEBUGGER_SCRIPT)  # quits at the hypervisor's magic breakpoint after its status
    code = run_emulator([bochs, "-q", "-f", str(rc), "-rc", str(script)], tmp_path, timeout=600)
    guest, hv = lines(com1), lines(com2)
    shown = f"exit {code}\nCOM1:\n" + "\n".join(guest) + "\nCOM2:\n" + "\n".join(hv)
    assert code == 0, shown
    assert f"mbtest: step multiboot: PASS {ARGS}" in guest, shown
    assert guest[-1] == GUEST_END, shown
    assert hv[-1] == STATUS, shown
    assert any(line.startswith("vmx: CPU 0 exits: ") for line in hv), shown  # the VT-x back end ran


USAGE = "hvtrace: usage error: argument --serial: "
HELP = " (see 'hvtrace image --help')"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--guest", "{tmp}/missing.elf"], ExitCode.NO_INPUT,
         "hvtrace: error: guest kernel {tmp}/missing.elf does not exist"),
        (["--serial", "com5,9600"], ExitCode.USAGE,
         f"{USAGE}PORT must be com1..com4 or an I/O port 0x1..0xfff8 in hex (got 'com5'){HELP}"),
        (["--serial", "com1,1000"], ExitCode.USAGE,
         f"{USAGE}BAUD must divide 115200 (115200, 57600, 38400, 19200, 9600, ...; got '1000'){HELP}"),
        (["--serial", "0x3f8"], ExitCode.USAGE,
         f"{USAGE}expected PORT,BAUD such as com1,115200 (got '0x3f8'){HELP}"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_its_code(
    hvtrace_run: RunFn, tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    iso = tmp_path / "out.iso"
    run = hvtrace_run("image", "--iso", str(iso), *(a.format(tmp=tmp_path) for a in args))
    assert run.returncode == code, run.describe()
    assert run.stderr.splitlines() == [message.format(tmp=tmp_path)], run.describe()
    assert not iso.exists()


def test_unwritable_output_is_refused_before_any_work(hvtrace_run: RunFn, tmp_path: Path) -> None:
    for iso, why in ((tmp_path / "no-dir" / "out.iso", f"directory {tmp_path / 'no-dir'} does not exist"),
                     (tmp_path, "it is a directory")):  # fmt: skip
        run = hvtrace_run("image", "--iso", str(iso))
        assert run.returncode == ExitCode.CANT_CREATE, run.describe()
        assert run.stderr.splitlines() == [f"hvtrace: error: cannot write {iso}: {why}"], run.describe()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
@pytest.mark.qemu
def test_hypervisor_refuses_a_console_rate_the_uart_cannot_make(hvtrace_run: RunFn) -> None:
    """The hypervisor's own check of console= (a value `--hv-append` passes unchecked)."""
    run = hvtrace_run("run", "--append", "console=com2,1000")
    assert run.returncode == HvStatus.BAD_CMDLINE, run.describe()
    assert "FATAL: command line option 'console=com2,1000': BAUD must divide 115200" in run.stdout, (
        run.describe()
    )
