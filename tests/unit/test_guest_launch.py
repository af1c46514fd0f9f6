"""Guest kernels at launch: GuestSpec checks, QEMU's -initrd, the GRUB ISO's modules and cache key, and
the --guest/--initrd/--append/--hv-append/--memory rules of `run`, `capture` and `tui` (no emulator)."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path
from typing import Any

import pytest

from hvtrace.cli import build_parser, main
from hvtrace.commands.run_handler import kernel_cmdline, make_session
from hvtrace.exitcodes import ExitCode, LaunchError
from hvtrace.image import ensure_iso, iso_key
from hvtrace.launch.bochs import BochsSession
from hvtrace.launch.guest import GUEST_CMDLINE_MAX, GuestSpec, launch_options
from hvtrace.launch.memory import GUEST_MIN_MEMORY_MB
from hvtrace.launch.qemu import QemuSession, qemu_argv


@pytest.fixture
def kernel(tmp_path: Path) -> Path:
    k = tmp_path / "k.elf"
    k.write_bytes(b"\x7fELF kernel bytes")
    return k


@pytest.fixture
def initrd(tmp_path: Path) -> Path:
    i = tmp_path / "initrd.img"
    i.write_bytes(b"initrd bytes")
    return i


def _code(call: Any) -> ExitCode:
    with pytest.raises(LaunchError) as info:
        call()
    return info.value.code


# ---------------------------------------------------------------------------- GuestSpec checks
def test_spec_paths_become_absolute(kernel: Path, initrd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(kernel.parent)
    spec = GuestSpec(Path(kernel.name), Path(initrd.name), "console=ttyS0")
    assert spec.kernel == kernel
    assert spec.initrd == initrd
    assert spec.kernel.is_absolute()
    assert spec.name == "k.elf"


def test_missing_kernel_or_initrd_is_no_input(tmp_path: Path, kernel: Path) -> None:
    with pytest.raises(LaunchError) as info:
        GuestSpec(tmp_path / "nope.elf")
    assert info.value.code == ExitCode.NO_INPUT
    assert "guest kernel" in info.value.message
    assert "does not exist" in info.value.message
    with pytest.raises(LaunchError) as info:
        GuestSpec(kernel, tmp_path / "no-initrd")
    assert info.value.code == ExitCode.NO_INPUT
    assert info.value.message.startswith("initrd ")


def test_directory_is_no_input(tmp_path: Path) -> None:
    with pytest.raises(LaunchError) as info:
        GuestSpec(tmp_path)
    assert info.value.code == ExitCode.NO_INPUT
    assert "not a regular file" in info.value.message


def test_unreadable_kernel_is_no_input(kernel: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_open = Path.open

    def deny(self: Path, *args: Any, **kw: Any) -> Any:
        if self == kernel:
            raise PermissionError(13, "Permission denied")
        return real_open(self, *args, **kw)

    monkeypatch.setattr(Path, "open", deny)  # chmod 0 does not stop root
    with pytest.raises(LaunchError) as info:
        GuestSpec(kernel)
    assert info.value.code == ExitCode.NO_INPUT
    assert "cannot be read: Permission denied" in info.value.message


@pytest.mark.parametrize("name", ["with space.elf", "with,comma.elf", "tab\there.elf"])
def test_path_qemu_cannot_carry_is_usage(tmp_path: Path, name: str, kernel: Path) -> None:
    bad = tmp_path / name
    bad.write_bytes(b"x")
    with pytest.raises(LaunchError) as info:
        GuestSpec(bad)
    assert info.value.code == ExitCode.USAGE
    assert "whitespace or a comma" in info.value.message
    assert _code(lambda: GuestSpec(kernel, bad)) == ExitCode.USAGE  # the initrd too


def test_a_link_with_a_plain_name_is_the_way_out(tmp_path: Path) -> None:
    bad = tmp_path / "my kernel"
    bad.write_bytes(b"x")
    link = tmp_path / "kernel"
    link.symlink_to(bad)
    assert GuestSpec(link).kernel == link  # not resolved: QEMU gets the plain name


@pytest.mark.parametrize("cmdline", ["a\nb", "tab\there", "caf\u00e9", "nul\0"])
def test_cmdline_the_hypervisor_cannot_take_is_usage(kernel: Path, cmdline: str) -> None:
    with pytest.raises(LaunchError) as info:
        GuestSpec(kernel, cmdline=cmdline)
    assert info.value.code == ExitCode.USAGE
    assert "not printable ASCII" in info.value.message


def test_cmdline_length_limit(kernel: Path) -> None:
    GuestSpec(kernel, cmdline="x" * GUEST_CMDLINE_MAX)
    with pytest.raises(LaunchError) as info:
        GuestSpec(kernel, cmdline="x" * (GUEST_CMDLINE_MAX + 1))
    assert info.value.code == ExitCode.USAGE
    assert "at most 2047" in info.value.message


def test_verify_notices_a_file_removed_later(kernel: Path, initrd: Path) -> None:
    spec = GuestSpec(kernel, initrd)
    spec.verify()
    initrd.unlink()
    assert _code(spec.verify) == ExitCode.NO_INPUT


# ---------------------------------------------------------------------------- QEMU
def test_qemu_initrd_is_the_kernel_module_string(kernel: Path) -> None:
    assert GuestSpec(kernel).qemu_initrd() == str(kernel)
    assert GuestSpec(kernel, cmdline="mbtest arg=1").qemu_initrd() == f"{kernel} mbtest arg=1"


def test_qemu_initrd_escapes_commas_and_adds_the_initrd(kernel: Path, initrd: Path) -> None:
    spec = GuestSpec(kernel, initrd, "console=ttyS0,115200 a,,b")
    assert spec.module_strings() == [f"{kernel} console=ttyS0,115200 a,,b", f"{initrd} initrd"]
    assert spec.qemu_initrd() == f"{kernel} console=ttyS0,,115200 a,,,,b,{initrd} initrd"
    # QEMU's own reading (get_opt_value): split at single commas, ",," is a literal comma.
    parts, cur, s, i = [], "", spec.qemu_initrd(), 0
    while i < len(s):
        if s[i] == ",":
            if s[i + 1 : i + 2] == ",":
                cur, i = cur + ",", i + 2
                continue
            parts.append(cur)
            cur = ""
        else:
            cur += s[i]
        i += 1
    parts.append(cur)
    assert parts == spec.module_strings()


def test_qemu_argv_adds_initrd_only_with_a_guest() -> None:
    common: dict[str, Any] = {
        "elf": Path("/x/hvtrace.elf"), "cmdline": "", "cpus": 1, "memory_mb": 256,
        "ram_path": Path("/dev/shm/r"), "gdb_port": 1, "qmp_socket": Path("/t/q"),
    }  # fmt: skip
    assert "-initrd" not in qemu_argv(**common)
    argv = qemu_argv(**common, initrd="/k/mbtest.elf mbtest arg=1")
    assert argv[argv.index("-initrd") + 1] == "/k/mbtest.elf mbtest arg=1"
    assert argv[argv.index("-kernel") + 1] == "/x/hvtrace.elf"


def test_qemu_session_passes_the_guest(kernel: Path, initrd: Path, tmp_path: Path) -> None:
    spec = GuestSpec(kernel, initrd, "a=1")
    s = QemuSession(cpus=1, guest=spec)
    assert s.guest is spec
    s.tmpdir = tmp_path
    argv = s._prepare(Path("/x/hvtrace.elf"))
    assert argv[argv.index("-initrd") + 1] == spec.qemu_initrd()
    assert argv[argv.index("-append") + 1] == ""  # the guest's command line is not the hypervisor's


# ---------------------------------------------------------------------------- GRUB ISO (Bochs)
@pytest.mark.parametrize(
    "cmdline",
    ['hvtrace_cmd="uname -r"', "a=$x", "a;b", "a|b", "{x}", "a\\b", "it's", "a*", "#x", "a  b", " a", "a "],
)
def test_grub_unsafe_cmdline_is_refused_for_bochs_only(kernel: Path, cmdline: str) -> None:
    spec = GuestSpec(kernel, cmdline=cmdline)  # fine for QEMU
    assert spec.grub_problem() is not None
    with pytest.raises(LaunchError) as info:
        BochsSession(cpus=1, guest=spec)
    assert info.value.code == ExitCode.USAGE
    assert "GRUB" in info.value.message
    QemuSession(cpus=1, guest=spec)


def test_grub_safe_cmdline(kernel: Path) -> None:
    text = "console=ttyS0,115200 rdinit=/init panic=-1 quiet mem=200M+x@y %~ a.b:c"
    assert GuestSpec(kernel, cmdline=text).grub_problem() is None
    assert GuestSpec(kernel).grub_problem() is None


def test_iso_files_module_lines_and_mkiso_args(kernel: Path, initrd: Path) -> None:
    spec = GuestSpec(kernel, initrd, "mbtest arg=1")
    assert spec.iso_files() == {"/boot/guest": kernel, "/boot/initrd": initrd}
    assert spec.grub_module_lines() == [
        "module --nounzip /boot/guest /boot/guest mbtest arg=1",
        "module --nounzip /boot/initrd /boot/initrd initrd",
    ]
    assert spec.mkiso_args() == [str(kernel), "mbtest arg=1", str(initrd)]
    bare = GuestSpec(kernel)
    assert bare.grub_module_lines() == ["module --nounzip /boot/guest /boot/guest"]
    assert bare.mkiso_args() == [str(kernel), ""]
    assert bare.iso_files() == {"/boot/guest": kernel}


def test_digest_and_iso_key_follow_the_guest_contents(tmp_path: Path, kernel: Path, initrd: Path) -> None:
    elf = tmp_path / "hv.elf"
    elf.write_bytes(b"\x7fELF hypervisor")
    plain = iso_key(elf, "")
    with_guest = GuestSpec(kernel, initrd, "a=1")
    k1 = iso_key(elf, "", with_guest)
    assert k1 != plain
    assert k1 == iso_key(elf, "", GuestSpec(kernel, initrd, "a=1"))
    assert iso_key(elf, "", GuestSpec(kernel, initrd, "a=2")) != k1  # guest args
    assert iso_key(elf, "", GuestSpec(kernel, None, "a=1")) != k1  # no initrd
    assert iso_key(elf, "x=1", with_guest) != k1  # hypervisor args
    # Contents, not names: a copy elsewhere gives the same ISO, an edit in place a new one.
    other = tmp_path / "copy"
    other.mkdir()
    (other / "kernel2").write_bytes(kernel.read_bytes())
    assert iso_key(elf, "", GuestSpec(other / "kernel2", initrd, "a=1")) == k1
    before = with_guest.digest()
    initrd.write_bytes(b"initrd bytes, edited")
    assert iso_key(elf, "", with_guest) != k1  # read when asked: an edit in place is seen
    edited = with_guest.digest()
    assert edited != before
    kernel.write_bytes(b"another kernel")
    assert with_guest.digest() not in (before, edited)
    # the split between kernel and initrd bytes is part of the digest
    (tmp_path / "ab").write_bytes(b"ab")
    (tmp_path / "c").write_bytes(b"c")
    (tmp_path / "a").write_bytes(b"a")
    (tmp_path / "bc").write_bytes(b"bc")
    assert (
        GuestSpec(tmp_path / "ab", tmp_path / "c").digest()
        != GuestSpec(tmp_path / "a", tmp_path / "bc").digest()
    )


def test_ensure_iso_refuses_a_grub_unsafe_guest_before_building(kernel: Path, tmp_path: Path) -> None:
    with pytest.raises(LaunchError) as info:
        ensure_iso(tmp_path / "never-read.elf", "", GuestSpec(kernel, cmdline="a;b"))
    assert info.value.code == ExitCode.USAGE


# ---------------------------------------------------------------------------- option rules
def _run_args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["run", *argv])


def test_without_guest_append_and_hv_append_go_to_the_hypervisor() -> None:
    args = _run_args("--append", "x=1", "--hv-append", "y=2", "--inject-fault", "ud")
    assert kernel_cmdline(args) == "fault=ud y=2 x=1"
    opts = launch_options(args)
    assert opts.guest is None
    assert opts.memory_mb == 256
    assert kernel_cmdline(_run_args("--hv-append", " storm=1 ")) == "storm=1"


def test_with_guest_append_is_the_guests_and_hv_append_the_hypervisors(kernel: Path) -> None:
    args = _run_args("--guest", str(kernel), "--append", " mbtest arg=1 ", "--hv-append", "trace=0")
    opts = launch_options(args, hv_parts=("fault=gp",))
    assert opts.hv_cmdline == "fault=gp trace=0"
    assert opts.guest is not None
    assert opts.guest.kernel == kernel
    assert opts.guest.cmdline == "mbtest arg=1"
    assert opts.guest.initrd is None
    assert kernel_cmdline(args) == "trace=0"
    session = make_session(args)
    assert isinstance(session, QemuSession)
    assert session.guest == opts.guest
    assert session.cmdline == "trace=0"
    assert session.memory_mb == 256


def test_guest_with_initrd(kernel: Path, initrd: Path) -> None:
    opts = launch_options(_run_args("--guest", str(kernel), "--initrd", str(initrd)))
    assert opts.guest is not None
    assert opts.guest.initrd == initrd
    assert opts.guest.cmdline == ""
    assert opts.hv_cmdline == ""


@pytest.mark.parametrize("command", ["capture", "tui"])
def test_memory_default_rises_to_256m_with_a_guest(command: str, kernel: Path) -> None:
    extra = ["-o", "x.hvt"] if command == "capture" else []
    p = build_parser()
    assert launch_options(p.parse_args([command, *extra])).memory_mb == 64
    with_guest = p.parse_args([command, *extra, "--guest", str(kernel)])
    assert launch_options(with_guest).memory_mb == GUEST_MIN_MEMORY_MB == 256
    explicit = p.parse_args([command, *extra, "--guest", str(kernel), "--memory", "128M"])
    assert launch_options(explicit).memory_mb == 128  # the user's choice stands
    assert launch_options(p.parse_args([command, *extra, "--memory", "512M"])).memory_mb == 512


def test_run_memory_default_and_explicit(kernel: Path) -> None:
    assert launch_options(_run_args("--guest", str(kernel))).memory_mb == 256
    assert launch_options(_run_args("--guest", str(kernel), "--memory", "1G")).memory_mb == 1024
    assert launch_options(_run_args("--memory", "64M")).memory_mb == 64


def test_help_states_the_guest_memory_default(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("run", "capture", "tui"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        out = " ".join(capsys.readouterr().out.split())
        assert "--guest KERNEL" in out
        assert "--initrd FILE" in out
        assert "--hv-append TEXT" in out
        assert "256M" in out
        assert "with --guest" in out


def _exit_code(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exc:
        raise SystemExit(main(argv))
    code = exc.value.code
    assert isinstance(code, int)
    return code


def test_cli_usage_errors(
    kernel: Path, initrd: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _exit_code(["run", "--initrd", str(initrd)]) == ExitCode.USAGE
    assert "--initrd needs --guest" in capsys.readouterr().err
    spaced = tmp_path / "a b.elf"
    spaced.write_bytes(b"x")
    assert _exit_code(["run", "--guest", str(spaced)]) == ExitCode.USAGE
    assert "whitespace or a comma" in capsys.readouterr().err
    # GRUB cannot carry quotes: refused for Bochs before anything is built or started
    bochs = ["run", "--backend", "bochs", "--guest", str(kernel), "--append", 'hvtrace_cmd="uname -r"']
    assert _exit_code(bochs) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert "GRUB" in err
    assert err.count("error:") == 1
    assert (
        _exit_code(["capture", "--ram", "/dev/shm/x.ram", "--guest", str(kernel), "-o", "x"])
        == ExitCode.USAGE
    )
    assert "exclude --ram" in capsys.readouterr().err
    cap_bochs = ["capture", "--backend", "bochs", "--guest", str(kernel), "--append", "a;b", "-o", "x"]
    assert _exit_code(cap_bochs) == ExitCode.USAGE  # refused when the session is made, before it starts
    assert "GRUB" in capsys.readouterr().err
    tui_bochs = ["tui", "--backend", "bochs", "--guest", str(kernel), "--append", "a;b"]
    assert _exit_code(tui_bochs) == ExitCode.USAGE  # before the UI starts
    assert "GRUB" in capsys.readouterr().err
    assert _exit_code(["tui", "--replay", "t.hvt", "--guest", str(kernel)]) == ExitCode.USAGE
    assert _exit_code(["tui", "--ram", "/dev/shm/x.ram", "--initrd", str(initrd)]) == ExitCode.USAGE


def test_cli_missing_guest_files_are_no_input(
    tmp_path: Path, kernel: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _exit_code(["run", "--guest", str(tmp_path / "none.elf")]) == ExitCode.NO_INPUT
    assert "does not exist" in capsys.readouterr().err
    assert _exit_code(["run", "--guest", str(kernel), "--initrd", str(tmp_path / "no")]) == ExitCode.NO_INPUT
    out = tmp_path / "x.hvt"
    argv = ["capture", "--backend", "qemu", "--guest", str(tmp_path / "none"), "-o", str(out)]
    assert _exit_code(argv) == ExitCode.NO_INPUT
    assert not out.exists()


def test_tui_starts_a_session_with_the_guest(kernel: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tui_main = importlib.import_module("hvtrace.tui.main")
    sources = importlib.import_module("hvtrace.tui.sources")
    seen: dict[str, Any] = {}
    monkeypatch.setattr(sources.Capture, "start", lambda **kw: seen.update(kw))
    args = build_parser().parse_args(
        ["tui", "--guest", str(kernel), "--append", "mbtest arg=1", "--hv-append", "storm=1"]
    )
    src = tui_main.make_source(args)
    assert src.info.guest == "k.elf"
    src._opener()
    assert seen["guest"] == GuestSpec(kernel, cmdline="mbtest arg=1")
    assert seen["cmdline"] == "storm=1"
    assert seen["memory_mb"] == 256
    assert seen["backend"] == "qemu"
