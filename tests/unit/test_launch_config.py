"""Pure configuration: QEMU argv, bochsrc, kernel command line, option parsing and classification."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from hvtrace.cli import build_parser, main
from hvtrace.commands.run_handler import kernel_cmdline, make_session
from hvtrace.exitcodes import ExitCode, LaunchError
from hvtrace.launch import procs
from hvtrace.launch.bochs import (
    DEBUGGER_SCRIPT,
    BochsSession,
    bochs_exit_message,
    bochsrc_text,
    debugger_script,
)
from hvtrace.launch.guest import launch_options
from hvtrace.launch.memory import parse_memory
from hvtrace.launch.qemu import QemuSession, free_tcp_port, qemu_argv
from hvtrace.launch.qemu_options import cpu_option, split_qemu_args


def _opt(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_qemu_argv_tcg() -> None:
    argv = qemu_argv(
        elf=Path("/x/hvtrace.elf"),
        cmdline="fault=ud fault_cpu=1",
        cpus=4,
        memory_mb=256,
        ram_path=Path("/dev/shm/hvtrace-1-ab.ram"),
        gdb_port=1234,
        qmp_socket=Path("/tmp/d/qmp.sock"),
    )
    assert argv[0] == "qemu-system-x86_64"
    assert _opt(argv, "-machine") == "q35,memory-backend=ram"
    assert _opt(argv, "-object") == (
        "memory-backend-file,id=ram,size=256M,mem-path=/dev/shm/hvtrace-1-ab.ram,share=on"
    )
    assert _opt(argv, "-accel") == "tcg"
    assert _opt(argv, "-cpu") == "qemu64,+svm,+npt,+pdpe1gb"
    assert _opt(argv, "-smp") == "4"
    assert _opt(argv, "-m") == "256M"
    assert _opt(argv, "-kernel") == "/x/hvtrace.elf"
    assert _opt(argv, "-append") == "fault=ud fault_cpu=1"
    assert "-no-reboot" in argv
    assert _opt(argv, "-device") == "isa-debug-exit,iobase=0xf4,iosize=4"
    assert _opt(argv, "-gdb") == "tcp:127.0.0.1:1234"
    assert _opt(argv, "-qmp") == "unix:/tmp/d/qmp.sock,server=on,wait=off"
    # COM1 (the first -serial) is the guest's; COM2, the hypervisor's private channel, is on stdout.
    serials = [argv[i + 1] for i, a in enumerate(argv) if a == "-serial"]
    assert serials == ["null", "chardev:hv"]
    assert _opt(argv, "-chardev").startswith("stdio,id=hv")
    with_file = qemu_argv(
        elf=Path("e"), cmdline="", cpus=1, memory_mb=64, ram_path=Path("r"), gdb_port=1, qmp_socket=Path("q"),
        guest_console=Path("/tmp/d/guest-console.txt"),
    )  # fmt: skip
    assert [with_file[i + 1] for i, a in enumerate(with_file) if a == "-serial"] == [
        "file:/tmp/d/guest-console.txt",
        "chardev:hv",
    ]


def test_qemu_argv_kvm_uses_host_cpu() -> None:
    argv = qemu_argv(
        elf=Path("e"),
        cmdline="",
        cpus=1,
        memory_mb=64,
        ram_path=Path("r"),
        gdb_port=1,
        qmp_socket=Path("q"),
        accel="kvm",
    )
    assert _opt(argv, "-accel") == "kvm"
    assert _opt(argv, "-cpu") == "host"


def test_bochsrc_has_every_required_line() -> None:
    text = bochsrc_text(
        iso=Path("/t/hvtrace.iso"), cpus=2, memory_mb=128, log=Path("/t/bochs.log"), serial=Path("/t/s.txt")
    )
    lines = text.splitlines()
    assert "megs: 128" in lines
    assert "romimage: file=/usr/share/bochs/BIOS-bochs-latest" in lines
    assert "vgaromimage: file=/usr/share/vgabios/vgabios.bin" in lines
    cpu_line = "cpu: model=corei7_skylake_x, count=2, ips=5000000, reset_on_triple_fault=0, ignore_bad_msrs=0"
    assert cpu_line in lines
    assert "ata0-master: type=cdrom, path=/t/hvtrace.iso, status=inserted" in lines
    assert "boot: cdrom" in lines
    assert 'display_library: rfb, options="timeout=0"' in lines
    assert "sound: waveoutdrv=dummy, waveindrv=dummy, midioutdrv=dummy" in lines
    assert "speaker: enabled=0" in lines
    assert "log: /t/bochs.log" in lines
    # Bochs' APIC asserts on a misaligned read the guest makes through the read-only xAPIC mapping:
    # reported, not fatal, for each CPU's APIC module (apic0, apic1); every other panic stays fatal.
    assert "panic: action=fatal, apic0=report, apic1=report" in lines
    assert "com1: enabled=0" in lines  # no guest console file given: no COM1
    assert "com2: enabled=1, mode=file, dev=/t/s.txt" in lines  # the hypervisor's private channel
    with_guest = bochsrc_text(
        iso=Path("/t/i.iso"), cpus=1, memory_mb=64, log=Path("/t/l"), serial=Path("/t/s.txt"),
        guest_console=Path("/t/g.txt"),
    ).splitlines()  # fmt: skip
    assert "com1: enabled=1, mode=file, dev=/t/g.txt" in with_guest
    assert "port_e9_hack: enabled=1" in lines
    assert "magic_break: enabled=1" in lines
    assert "clock: sync=none" in lines
    assert not [line for line in lines if line.startswith("com3")]  # no gdb stub asked for


def test_com3_is_the_resident_gdb_stubs_socket_only_when_asked() -> None:
    kw = {"iso": Path("/t/i.iso"), "cpus": 1, "memory_mb": 64, "log": Path("/t/l"), "serial": Path("/t/s")}
    lines = bochsrc_text(**kw, gdb_socket=4321).splitlines()  # type: ignore[arg-type]
    assert "com3: enabled=1, mode=socket-server, dev=127.0.0.1:4321" in lines
    common = {
        "elf": Path("e"), "cmdline": "gdbstub=1", "cpus": 1, "memory_mb": 64, "ram_path": Path("r"),
        "gdb_port": 1, "qmp_socket": Path("q"),
    }  # fmt: skip
    argv = qemu_argv(**common, hv_stub_port=4321)  # type: ignore[arg-type]
    serials = [argv[i + 1] for i, a in enumerate(argv) if a == "-serial"]
    com3 = "tcp:127.0.0.1:4321,server=on,wait=off,nodelay=on"
    assert serials == ["null", "chardev:hv", com3]  # COM1 (guest), COM2 (console), COM3 (the stub)
    assert _opt(argv, "-gdb") == "tcp:127.0.0.1:1"  # QEMU's own stays on its port


def test_bochsrc_keeps_bochs_msr_default_only_for_a_guest_os() -> None:
    kw = {"iso": Path("/t/i.iso"), "cpus": 1, "memory_mb": 512, "log": Path("/t/l"), "serial": Path("/t/s")}
    assert "ignore_bad_msrs=0" in bochsrc_text(**kw)  # type: ignore[arg-type]
    assert "ignore_bad_msrs=1" in bochsrc_text(**kw, os_guest=True)  # type: ignore[arg-type]


def test_debugger_script_continues_then_quits() -> None:
    assert DEBUGGER_SCRIPT.splitlines() == ["c", "quit"]


def test_debugger_script_dumps_before_at_the_first_vm_exit_after_a_breakpoint() -> None:
    """RAM goes to the "-before" files at the first VM exit after the breakpoint (host mode: in the
    guest, writemem would translate through EPT), then to the usual files at the end."""
    lines = debugger_script(Path("/d/ram.bin"), 32, before_at=0x200000C).splitlines()
    before = [
        f'writemem "/d/ram.bin-before.0" 0x0 {0xA0000}',
        f'writemem "/d/ram.bin-before.100000" 0x100000 {31 << 20}',
    ]
    after = [f'writemem "/d/ram.bin.0" 0x0 {0xA0000}', f'writemem "/d/ram.bin.100000" 0x100000 {31 << 20}']
    assert lines == ["pb 0x200000c", "c", "d 1", "vmexitbp", "c", *before, "vmexitbp", "c", *after, "quit"]
    assert debugger_script(Path("/d/ram.bin"), 32).splitlines() == ["c", *after, "quit"]


def test_bochs_exit_message_extraction() -> None:
    stderr = [
        "00000000000p[SIM   ] >>PANIC<< numerical parameter 'n_processors' was set to 300",
        "========================================================================",
        "Bochs is exiting with the following message:",
        "[SIM   ] numerical parameter 'n_processors' was set to 300, which is out of range 1 to 255",
        "========================================================================",
    ]
    assert bochs_exit_message(stderr) == (
        "[SIM   ] numerical parameter 'n_processors' was set to 300, which is out of range 1 to 255"
    )
    assert bochs_exit_message(["nothing here"]) == ""


def test_bochs_classification() -> None:
    s = BochsSession(cpus=1)
    s.stderr_lines = ["Bochs is exiting with the following message:", "[CPU0  ] exception(): 3rd (13) "
                      "exception with no resolution", "====="]  # fmt: skip
    code, msg = s._classify_no_status(1)
    assert code == ExitCode.NO_STATUS
    assert "triple fault" in msg
    s.stderr_lines = ["Bochs is exiting with the following message:", "[SIM   ] bad option", "====="]
    code, msg = s._classify_no_status(1)
    assert code == ExitCode.EMULATOR_FAILED
    assert "bad option" in msg


def test_qemu_classification() -> None:
    s = QemuSession(cpus=1)
    s.stderr_lines = ["qemu-system-x86_64: Invalid SMP CPUs 300. The max CPUs supported is 288"]
    code, msg = s._classify_no_status(1)
    assert code == ExitCode.EMULATOR_FAILED
    assert "Invalid SMP CPUs 300" in msg
    s.stderr_lines = []
    assert s._classify_no_status(0)[0] == ExitCode.NO_STATUS  # -no-reboot: reset/triple fault
    assert s._classify_no_status(5)[0] == ExitCode.NO_STATUS  # debug-exit without a status line
    assert s._classify_no_status(-6)[0] == ExitCode.EMULATOR_FAILED  # QEMU aborted


def test_free_tcp_port_is_bindable() -> None:
    port = free_tcp_port()
    assert 0 < port < 65536
    with socket.socket() as sk:
        sk.bind(("127.0.0.1", port))


@pytest.mark.parametrize(
    ("text", "mib"), [("256M", 256), ("1G", 1024), ("512", 512), ("64MiB", 64), ("2g", 2048)]
)
def test_parse_memory(text: str, mib: int) -> None:
    assert parse_memory(text) == mib


@pytest.mark.parametrize("text", ["", "abc", "1T", "8M", "-5M", "1.5G"])
def test_parse_memory_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="memory size"):
        parse_memory(text)


def test_kernel_cmdline_from_options() -> None:
    p = build_parser()
    args = p.parse_args(["run", "--cpus", "2", "--inject-fault", "ud", "--fault-cpu", "1", "--append", "x=1"])
    assert kernel_cmdline(args) == "fault=ud fault_cpu=1 x=1"
    assert kernel_cmdline(p.parse_args(["run"])) == ""


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--backend", "vbox"],
        ["run", "--cpus", "0"],
        ["run", "--cpus", "-3"],
        ["run", "--cpus", "two"],
        ["run", "--memory", "1T"],
        ["run", "--timeout", "-1"],  # 0 means no timeout (issue 16 item 5)
        ["run", "--gdb", "70000"],
        ["run", "--inject-fault", "xx"],
        ["run", "--accel", "hvf"],
        ["run", "--no-such-option"],
        ["run", "--fault-cpu", "1"],  # without --inject-fault
        ["run", "--inject-fault", "ud", "--fault-cpu", "2", "--cpus", "2"],  # CPU 2 does not exist
        ["run", "--backend", "bochs", "--gdb-stub", "qemu"],
        ["run", "--backend", "bochs", "--accel", "kvm"],
        ["frobnicate"],
        [],
    ],
)
def test_usage_errors_exit_64(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        raise SystemExit(main(argv))
    assert exc.value.code == ExitCode.USAGE
    err = capsys.readouterr().err
    assert "hvtrace:" in err


def test_unknown_backend_is_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["run", "--backend", "vbox"])
    assert exc.value.code == 64
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "unknown backend 'vbox'" in err[0]


def test_bochs_takes_the_status_line_from_port_e9_when_the_uart_lost_its_tail() -> None:
    s = BochsSession(cpus=1)
    s.stdout_lines = ["Next at t=0", "boot line", "HVTRACE STATUS code=2 result=fail reason=exception"]
    s._serial_partial = "HVTRACE STATUS code=2 result=fail reason=exc"  # truncated: must not be used
    s._after_exit()
    assert s.status is not None
    assert s.status.reason == "exception"
    assert s.lines == ["HVTRACE STATUS code=2 result=fail reason=exception"]


def test_bochs_partial_serial_line_is_kept_when_port_e9_has_no_status() -> None:
    s = BochsSession(cpus=1)
    s.stdout_lines = ["Next at t=0"]
    s._serial_partial = "last words without newline"
    s._after_exit()
    assert s.status is None
    assert s.lines == ["last words without newline"]


# ------------------------------------------------------------------- --cpu-model / --qemu-arg
def _argv(**kw: Any) -> list[str]:
    return qemu_argv(
        elf=Path("/x/hvtrace.elf"), cmdline="", cpus=1, memory_mb=64, ram_path=Path("/dev/shm/r.ram"),
        gdb_port=1234, qmp_socket=Path("/tmp/d/qmp.sock"), **kw,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("model", "cpu"),
    [
        (None, "qemu64,+svm,+npt,+pdpe1gb"),
        ("max", "max,+svm,+npt,+pdpe1gb"),
        ("qemu64,+x2apic", "qemu64,+x2apic,+svm,+npt,+pdpe1gb"),
        ("EPYC,+svm", "EPYC,+svm,+npt,+pdpe1gb"),  # named by the user: not repeated
        ("max,npt=on,pdpe1gb", "max,npt=on,pdpe1gb,+svm"),
        ("qemu64,-x2apic", "qemu64,-x2apic,+svm,+npt,+pdpe1gb"),
    ],
)
def test_cpu_model_gets_what_the_svm_back_end_needs(model: str | None, cpu: str) -> None:
    assert cpu_option(model) == cpu
    argv = _argv(cpu_model=model)
    assert _opt(argv, "-cpu") == cpu
    assert argv.count("-cpu") == 1


def test_cpu_model_under_kvm_is_passed_as_given() -> None:
    assert cpu_option(None, "kvm") == "host"
    assert cpu_option("max", "kvm") == "max"
    assert _opt(_argv(cpu_model="EPYC", accel="kvm"), "-cpu") == "EPYC"


@pytest.mark.parametrize(
    ("model", "why"),
    [
        ("qemu64,-svm", "turns off svm"),
        ("max,npt=off", "turns off npt"),
        ("max,pdpe1gb=false", "turns off pdpe1gb"),
        ("", "needs a model name"),
        ("max,", "is not a feature"),
        ("max +svm", "is not a CPU model name"),
        (",+svm", "is not a CPU model name"),
    ],
)
def test_bad_cpu_models_are_usage_errors(model: str, why: str) -> None:
    with pytest.raises(LaunchError, match=why) as exc:
        cpu_option(model)
    assert exc.value.code == ExitCode.USAGE


def test_qemu_args_are_split_like_shell_words_and_come_last() -> None:
    words = split_qemu_args(["-device virtio-rng-pci", "-no-reboot", "--global=a.b=c", "-name 'my vm'"])
    assert words == ("-device", "virtio-rng-pci", "-no-reboot", "--global=a.b=c", "-name", "my vm")
    argv = _argv(extra_args=words)
    assert argv[-len(words) :] == list(words)
    assert argv[: -len(words)] == _argv()  # hvtrace's own options unchanged
    assert split_qemu_args(["-device", "isa-debug-exit"]) == ("-device", "isa-debug-exit")


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("-cpu max", "use --cpu-model"),
        ("--smp=4", "use --cpus"),
        ("-m 1G", "use --memory"),
        ("-machine pc", "shared memory backend"),
        ("-device 'unbalanced", "quotation"),
        ("", "needs a QEMU argument"),
    ],
)
def test_qemu_args_that_hvtrace_owns_are_usage_errors(value: str, why: str) -> None:
    with pytest.raises(LaunchError, match=why) as exc:
        split_qemu_args([value])
    assert exc.value.code == ExitCode.USAGE


@pytest.mark.parametrize("command", ["run", "capture", "tui"])
def test_cpu_model_and_qemu_args_parse_for_every_session_command(command: str) -> None:
    extra = ["-o", "x.hvt", "--backend", "qemu"] if command == "capture" else []
    args = build_parser().parse_args(
        [
            command,
            *extra,
            "--cpu-model",
            "max",
            "--qemu-arg",
            "-device virtio-rng-pci",
            "--qemu-arg=-no-reboot",
        ]
    )
    opts = launch_options(args)
    assert opts.cpu_model == "max"
    assert opts.qemu_args == ("-device", "virtio-rng-pci", "-no-reboot")
    bare = launch_options(build_parser().parse_args([command, *extra]))
    assert (bare.cpu_model, bare.qemu_args) == (None, ())


def test_make_session_hands_the_options_to_qemu() -> None:
    args = build_parser().parse_args(["run", "--cpu-model", "qemu64,+x2apic", "--qemu-arg=-no-reboot"])
    s = make_session(args)
    assert isinstance(s, QemuSession)
    assert (s.cpu_model, s.qemu_args) == ("qemu64,+x2apic", ("-no-reboot",))


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--backend", "bochs", "--cpu-model", "max"],
        ["run", "--backend", "bochs", "--qemu-arg=-no-reboot"],
        ["capture", "-o", "x.hvt", "--backend", "bochs", "--cpu-model", "max"],
        ["capture", "-o", "x.hvt", "--ram", "/dev/shm/x.ram", "--qemu-arg=-no-reboot"],
        ["tui", "--replay", "x.hvt", "--cpu-model", "max"],
        ["run", "--cpu-model", "qemu64,-svm"],
        ["run", "--qemu-arg", "-cpu host"],
    ],
)
def test_qemu_options_usage_errors_exit_64(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert "--cpu-model" in err or "--qemu-arg" in err, err


def test_only_the_private_channel_gives_the_status_line() -> None:
    """COM1 is the guest's: a status line there is guest output, never the run's status."""
    s = QemuSession(cpus=1)
    s._guest_line("HVTRACE STATUS code=0 result=pass reason=guest_pass")  # the guest's fake, on COM1
    assert s._classify(0, False, 60.0, []).status is None
    assert s.guest_lines == ["HVTRACE STATUS code=0 result=pass reason=guest_pass"]
    s._console_line("HVTRACE STATUS code=1 result=fail reason=guest_triple_fault")
    assert s.status is not None
    result = s._classify(3, False, 60.0, [])
    assert result.exit_code == 1
    assert result.notes == []  # QEMU's status 3 = (1 << 1) | 1: the hypervisor's own isa-debug-exit
    assert s.lines == s.guest_lines + s.hv_lines  # both consoles shown, in arrival order
    s._guest_line("HVTRACE STATUS code=0 result=pass reason=ok")  # later guest text changes nothing
    assert s.status.reason == "guest_triple_fault"


def test_the_last_private_status_line_counts() -> None:
    s = QemuSession(cpus=1)
    s._console_line("HVTRACE STATUS code=0 result=pass reason=ok")
    s._console_line("HVTRACE STATUS code=0 result=pass reason=guest_debug_exit guest_code=5")
    assert s.status is not None
    assert s._classify(1, False, 60.0, []).exit_code == 5


def test_bochs_takes_the_status_line_from_port_e9_never_from_the_guests_com1() -> None:
    s = BochsSession(cpus=1)
    s._guest_line("HVTRACE STATUS code=0 result=pass reason=guest_pass")  # the guest's, on COM1
    s.stdout_lines = ["HVTRACE STATUS code=0 result=pass reason=guest_debug_exit guest_code=7"]
    s._after_exit()
    assert s.status is not None
    assert (s.status.reason, s.status.guest_code) == ("guest_debug_exit", 7)
    assert not s._keep_tmpdir(s._classify(0, False, 60.0, []))  # the guest's code is no Bochs failure


def test_bochs_a_magic_breakpoint_without_status_is_the_guests() -> None:
    """xchg bx,bx stops Bochs whoever executes it; without the private status line it is no success."""
    s = BochsSession(cpus=1)
    s._guest_line("HVTRACE STATUS code=0 result=pass reason=guest_pass")
    s.stdout_lines = ["(0) Magic breakpoint", "Next at t=123"]
    s._after_exit()
    result = s._classify(0, False, 60.0, [])
    assert result.status is None
    assert result.exit_code == ExitCode.NO_STATUS
    assert "magic breakpoint" in result.message
    assert "guest executed it" in result.message


class _QuickQemu(QemuSession):
    exit_grace = 0.3


def test_a_status_line_qemu_does_not_leave_after_is_not_the_hypervisors() -> None:
    """The hypervisor leaves QEMU right after its status line; a line QEMU stays alive after was
    printed by the guest: the wait goes on (here to the timeout) instead of taking it."""
    s = _QuickQemu(cpus=1, timeout=1.5)
    s.proc = procs.spawn(["sleep", "30"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    s._started_at = time.monotonic()
    try:
        s._console_line("HVTRACE STATUS code=0 result=pass reason=guest_pass")
        result = s.wait()
    finally:
        procs.stop(s.proc, grace=1.0)
    assert result.exit_code == ExitCode.TIMEOUT
    assert result.status is None
    assert any("ignored a status line qemu did not exit after" in n for n in result.notes), result.notes


def test_qemu_warnings_on_the_users_options_become_notes() -> None:
    warning = (
        "qemu-system-x86_64: warning: TCG doesn't support requested feature: CPUID.01H:ECX.x2apic [bit 21]"
    )
    status = "HVTRACE STATUS code=0 result=pass reason=ok"
    mine = QemuSession(cpus=1, cpu_model="qemu64,+x2apic")
    mine.stderr_lines = [warning, ""]
    mine._console_line(status)
    assert mine._classify(1, False, 60.0, []).notes == [f"QEMU said: {warning}"]
    plain = QemuSession(cpus=1)  # hvtrace's own configuration: nothing to tell
    plain.stderr_lines = [warning]
    plain._console_line(status)
    assert plain._classify(1, False, 60.0, []).notes == []
