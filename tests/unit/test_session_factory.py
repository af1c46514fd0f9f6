"""One session factory (hvtrace.launch.make_session), one source check for capture/tui, and every
subcommand dispatched through its own handler (args.func)."""

from __future__ import annotations

import pytest

from hvtrace.cli import build_parser, main
from hvtrace.exitcodes import ExitCode, LaunchError
from hvtrace.launch import BACKENDS, BochsSession, QemuSession, make_session


def test_each_backend_name_builds_its_session() -> None:
    assert set(BACKENDS) == {"qemu", "bochs"}
    qemu = make_session("qemu", cpus=2, memory_mb=128, cmdline="storm=1", gdb_port=1234)
    assert isinstance(qemu, QemuSession)
    assert (qemu.cpus, qemu.memory_mb, qemu.cmdline, qemu.gdb_port) == (2, 128, "storm=1", 1234)
    assert isinstance(make_session("bochs", cpus=2), BochsSession)


def test_gdb_port_selects_the_resident_stub_where_it_is_the_one() -> None:
    # Bochs has no gdbstub of its own: --gdb is the hypervisor's (gdbstub=1, COM3); QEMU keeps its own
    # unless --gdb-stub hv asks for the resident one (issue 17).
    bochs = make_session("bochs", cmdline="storm=1", gdb_port=0)
    assert isinstance(bochs, BochsSession)
    assert bochs.cmdline == "storm=1 gdbstub=1"
    assert make_session("bochs", cmdline="storm=1").cmdline == "storm=1"
    qemu = make_session("qemu", cmdline="storm=1", gdb_port=1234)
    assert isinstance(qemu, QemuSession)
    assert (qemu.cmdline, qemu.gdb_stub) == ("storm=1", "qemu")
    hv = make_session("qemu", cmdline="storm=1", gdb_port=1234, gdb_stub="hv")
    assert isinstance(hv, QemuSession)
    assert (hv.cmdline, hv.gdb_stub) == ("storm=1 gdbstub=1", "hv")


@pytest.mark.parametrize(
    ("backend", "options", "words"),
    [
        ("vbox", {}, "unknown backend 'vbox'"),
        ("bochs", {"accel": "kvm"}, "--accel applies to the qemu backend only"),
        ("bochs", {"gdb_stub": "qemu"}, "--gdb-stub qemu needs the qemu backend"),
        ("bochs", {"cpu_model": "max"}, "--cpu-model and --qemu-arg apply to the qemu backend only"),
        ("bochs", {"qemu_args": ("-no-reboot",)}, "--cpu-model and --qemu-arg apply to the qemu backend"),
    ],
)
def test_what_only_qemu_offers_is_a_usage_error_for_bochs(
    backend: str, options: dict[str, object], words: str
) -> None:
    with pytest.raises(LaunchError) as e:
        make_session(backend, **options)  # type: ignore[arg-type]
    assert e.value.code == ExitCode.USAGE
    assert words in e.value.message


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["capture", "-o", "x.hvt"], "give either --ram PATH (attach) or --backend (start a session)"),
        (["capture", "-o", "x.hvt", "--ram", "r.ram", "--backend", "qemu"], "give either --ram PATH"),
        (["tui", "--replay", "t.hvt", "--ram", "r.ram"], "--replay excludes --ram and --backend"),
        (["tui", "--replay", "t.hvt", "--backend", "bochs"], "--replay excludes --ram and --backend"),
        (
            ["tui", "--ram", "r.ram", "--backend", "qemu"],
            "not both",
        ),
        (["tui", "--ram", "r.ram", "--guest", "k.elf"], "--guest/--initrd start a session"),
        (["capture", "-o", "x.hvt", "--ram", "r.ram", "--cpu-model", "max"], "--cpu-model/--qemu-arg apply"),
        (["capture", "-o", "x.hvt", "--ram", "r.ram", "--gdb"], "--gdb/--gdb-stub apply to a session"),
        (["tui", "--replay", "t.hvt", "--gdb-stub", "hv"], "--gdb/--gdb-stub apply to a session"),
    ],
)
def test_one_source_check_for_capture_and_tui(
    argv: list[str], words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == ExitCode.USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("hvtrace: usage error: ")
    assert words in err[0]


@pytest.mark.parametrize("command", [["run"], ["capture", "-o", "x.hvt"], ["tui"]])
def test_run_capture_and_tui_take_the_same_gdb_options(command: list[str]) -> None:
    parse = build_parser().parse_args
    assert (parse(command).gdb, parse(command).gdb_stub) == (None, None)
    assert parse([*command, "--gdb"]).gdb == 0  # a free port, printed when the session starts
    assert parse([*command, "--gdb", "1234", "--gdb-stub", "hv"]).gdb_stub == "hv"
    assert parse([*command, "--gdb", "1234"]).gdb == 1234


@pytest.mark.parametrize(
    ("argv", "handler"),
    [
        (["run"], "cmd_run"),
        (["doctor"], "cmd_doctor"),
        (["capture", "-o", "x.hvt"], "cmd_capture"),
        (["report", "x.hvt"], "cmd_report"),
        (["export", "x.hvt", "--format", "csv", "-o", "x.csv"], "cmd_export"),
        (["gdb"], "cmd_gdb"),
        (["core-from-dump", "p", "-o", "x.core"], "cmd_core_from_dump"),
        (["tui"], "cmd_tui"),
    ],
)
def test_every_subcommand_names_its_own_handler(argv: list[str], handler: str) -> None:
    assert build_parser().parse_args(argv).func.__name__ == handler
