"""QEMU backend: AMD SVM + NPT under TCG (any host), or KVM with nested virtualization.

Guest RAM is a shared file in /dev/shm so host tools can mmap it while the VM runs; the gdbstub
listens on loopback; QMP on a unix socket in the session's temp dir. Two serial ports: COM1 is the
guest's console, on a pipe QEMU inherits (opened by QEMU as ``/dev/fd/N``); COM2 is the hypervisor's
private channel (its console and status line; hidden from the guest by I/O intercepts,
hv/core/io_policy.c) on QEMU's stdout. Both are read line by line as they come; QEMU's own messages
come on stderr.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO, ClassVar, Unpack

from hvtrace.abi import HV_DEBUG_EXIT_PORT, HV_DEBUG_EXIT_SIZE
from hvtrace.exitcodes import ExitCode, LaunchError
from hvtrace.host import kvm_info
from hvtrace.launch import procs
from hvtrace.launch.qemu_options import cpu_option
from hvtrace.launch.session import RunResult, Session, SessionOptions
from hvtrace.status import StatusLine
from hvtrace.tools import require_tool

QEMU = "qemu-system-x86_64"
SHM_DIR = Path("/dev/shm")
RAM_PREFIX = "hvtrace-"


def free_tcp_port() -> int:
    """A currently free loopback TCP port (bind to port 0 and let the kernel choose)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def ram_dir() -> Path:
    return SHM_DIR if SHM_DIR.is_dir() else Path("/tmp")


def sweep_stale_ram_files(directory: Path | None = None) -> list[Path]:
    """Remove RAM files left by hvtrace processes that were SIGKILLed (their pid is in the name)."""
    removed = []
    for p in (directory or ram_dir()).glob(f"{RAM_PREFIX}*.ram"):
        parts = p.name.split("-")
        if len(parts) >= 3 and parts[1].isdigit() and not procs.pid_alive(int(parts[1])):
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def sweep_stale_tmpdirs(directory: Path | None = None) -> list[Path]:
    """Remove QEMU session dirs (only a QMP socket inside) of hvtrace processes that no longer exist."""
    removed = []
    for p in (directory or Path(tempfile.gettempdir())).glob("hvtrace-qemu-*-*"):
        owner = p.name.split("-")[2]
        if p.is_dir() and owner.isdigit() and not procs.pid_alive(int(owner)):
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    return removed


def qemu_argv_of_ram(ram: Path, proc: Path = Path("/proc")) -> list[str] | None:
    """The command line of the QEMU process that maps ``ram`` (from /proc), or None."""
    want = f"mem-path={ram}"
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if any(want in a.split(",") for a in args):
            return args
    return None


def processors(accel: str, cpu: str, cpus: int, memory_mb: int) -> list[str]:
    """The accelerator, the ``-cpu`` model, how many CPUs and how much RAM."""
    return ["-accel", accel, "-cpu", cpu, "-smp", str(cpus), "-m", f"{memory_mb}M"]


def headless(chardev: str) -> list[str]:
    """No window, no monitor, and a character device ``chardev`` on our stdio (``signal=off``: a ^C
    in the terminal is hvtrace's to handle, QEMU stops when we stop it)."""
    return ["-display", "none", "-monitor", "none", "-chardev", f"stdio,id={chardev},signal=off"]


def qemu_argv(
    *,
    elf: Path,
    cmdline: str,
    cpus: int,
    memory_mb: int,
    ram_path: Path,
    gdb_port: int,
    qmp_socket: Path,
    accel: str = "tcg",
    qemu: str = QEMU,
    initrd: str | None = None,
    cpu_model: str | None = None,
    extra_args: Sequence[str] = (),
    guest_console: Path | None = None,
    hv_stub_port: int | None = None,
) -> list[str]:
    """The QEMU command line for one run (pure function; unit-tested). ``initrd``: the multiboot
    modules (a guest kernel and its initrd, :meth:`GuestSpec.qemu_initrd`); ``cpu_model``: the
    user's ``--cpu-model`` (see :func:`cpu_option`); ``extra_args``: the user's ``--qemu-arg`` words,
    last; ``guest_console``: the file COM1 (the guest's console) goes to, e.g. ``/dev/fd/N`` of an
    inherited pipe (default: none, the guest's bytes are dropped). COM2, the hypervisor's private
    channel, is on stdout. ``hv_stub_port``: COM3, the hypervisor's resident gdb stub (gdbstub=1), as a
    loopback TCP server gdb may connect to at any time (``--gdb-stub hv``)."""
    cpu = cpu_option(cpu_model, accel)
    com1 = f"file:{guest_console}" if guest_console is not None else "null"
    modules = ["-initrd", initrd] if initrd is not None else []
    # nodelay: one small packet per round trip; with Nagle each waited for a delayed ACK (~40 ms).
    com3 = ["-serial", f"tcp:127.0.0.1:{hv_stub_port},server=on,wait=off,nodelay=on"] if hv_stub_port else []
    return [
        qemu,
        "-machine", "q35,memory-backend=ram",
        "-object", f"memory-backend-file,id=ram,size={memory_mb}M,mem-path={ram_path},share=on",
        *processors(accel, cpu, cpus, memory_mb),
        "-kernel", str(elf),
        "-append", cmdline,
        *modules,
        *headless("hv"),
        "-serial", com1,                # COM1 (0x3f8): the guest's
        "-serial", "chardev:hv",        # COM2 (0x2f8): the hypervisor's private channel
        *com3,                          # COM3 (0x3e8): the resident gdb stub's, with --gdb-stub hv
        "-no-reboot",
        "-device", f"isa-debug-exit,iobase={HV_DEBUG_EXIT_PORT:#x},iosize={HV_DEBUG_EXIT_SIZE}",
        "-gdb", f"tcp:127.0.0.1:{gdb_port}",
        "-qmp", f"unix:{qmp_socket},server=on,wait=off",
        *extra_args,
    ]  # fmt: skip


class QemuSession(Session):
    """The hypervisor under QEMU. Exposes ``gdb_port``, ``qmp_socket`` and ``ram_path``.

    ``ram_path`` (guest-physical RAM from address 0) stays until :meth:`close`, also after
    :meth:`wait` returned: read what the run left in memory there before leaving the ``with`` block.
    """

    backend: ClassVar[str] = "qemu"
    default_timeout: ClassVar[float] = 60.0
    exit_grace: ClassVar[float] = 10.0
    #: The hypervisor's isa-debug-exit write ends QEMU at once (the guest's own writes are intercepted).
    status_needs_exit: ClassVar[bool] = True

    def __init__(
        self,
        *,
        accel: str = "tcg",
        gdb_port: int | None = None,
        gdb_stub: str = "qemu",
        cpu_model: str | None = None,
        qemu_args: Sequence[str] = (),
        **options: Unpack[SessionOptions],
    ) -> None:
        super().__init__(**options)
        if gdb_stub not in ("qemu", "hv"):
            raise LaunchError(ExitCode.USAGE, f"unknown gdb stub {gdb_stub!r} (choose qemu or hv)")
        #: Which stub ``gdb_port`` reaches: QEMU's gdbstub, or the hypervisor's own (gdbstub=1, on COM3;
        #: QEMU's then listens on ``qemu_gdb_port``).
        self.gdb_stub = gdb_stub
        self.qemu_gdb_port = 0
        if gdb_stub == "hv":
            self.cmdline = f"{self.cmdline} gdbstub=1".strip()
        if accel not in ("tcg", "kvm"):
            raise LaunchError(ExitCode.USAGE, f"unknown accelerator {accel!r} (choose tcg or kvm)")
        cpu_option(cpu_model, accel)  # a malformed model is a usage error now, not a QEMU failure
        #: ``--cpu-model`` as the user gave it (hvtrace adds its back end's needs) and ``--qemu-arg`` words.
        self.cpu_model = cpu_model
        self.qemu_args = tuple(qemu_args)
        if gdb_port is not None and not 0 <= gdb_port < 65536:  # 0: a free port
            raise LaunchError(ExitCode.USAGE, f"--gdb port must be 1..65535 (got {gdb_port})")
        self.accel = accel
        self.gdb_port = gdb_port if gdb_port is not None else 0
        self.qmp_socket: Path | None = None
        self.ram_path: Path | None = None
        #: The pipe COM1 (the guest's console) writes to: read into ``guest_lines``.
        self._guest_read: int | None = None
        self._guest_write: int | None = None
        self._guest_stream: IO[bytes] | None = None
        self.stderr_lines: list[str] = []
        self.qemu = QEMU

    def check_tools(self) -> None:
        self.qemu = require_tool(QEMU, "for the QEMU backend")
        if self.accel == "kvm":
            refusal = kvm_info().refusal()
            if refusal is not None:
                raise LaunchError(ExitCode.TOOL_MISSING, f"--accel kvm refused: {refusal}")

    def _prepare(self, elf: Path) -> list[str]:
        assert self.tmpdir is not None
        sweep_stale_ram_files()
        sweep_stale_tmpdirs()
        self.ram_path = ram_dir() / f"{RAM_PREFIX}{os.getpid()}-{secrets.token_hex(6)}.ram"
        self.qmp_socket = self.tmpdir / "qmp.sock"
        self._guest_read, self._guest_write = os.pipe()  # COM1, the guest's console (see _spawn)
        if self.gdb_port == 0:
            self.gdb_port = free_tcp_port()
        self.qemu_gdb_port = free_tcp_port() if self.gdb_stub == "hv" else self.gdb_port
        self.info(f"ram file {self.ram_path}")
        which = "the hypervisor's gdb stub, COM3" if self.gdb_stub == "hv" else "QEMU's gdbstub"
        self.info(f"gdb port {self.gdb_port} ({which}: target remote 127.0.0.1:{self.gdb_port})")
        self.info(f"qmp socket {self.qmp_socket}")
        return qemu_argv(
            elf=elf,
            cmdline=self.cmdline,
            cpus=self.cpus,
            memory_mb=self.memory_mb,
            ram_path=self.ram_path,
            gdb_port=self.qemu_gdb_port,
            qmp_socket=self.qmp_socket,
            accel=self.accel,
            qemu=self.qemu,
            initrd=self.guest.qemu_initrd() if self.guest is not None else None,
            cpu_model=self.cpu_model,
            extra_args=self.qemu_args,
            guest_console=Path(f"/dev/fd/{self._guest_write}"),
            hv_stub_port=self.gdb_port if self.gdb_stub == "hv" else None,
        )

    def _spawn(self) -> subprocess.Popen[bytes]:
        assert self.tmpdir is not None
        assert self._guest_write is not None
        # QEMU inherits COM1's write end (same number; its file chardev opens /dev/fd/N); we keep only
        # the read end, so the pipe reports EOF when QEMU is gone.
        try:
            return procs.spawn(self.argv, cwd=self.tmpdir, pass_fds=(self._guest_write,))
        finally:
            os.close(self._guest_write)
            self._guest_write = None

    def _start_readers(self) -> None:
        proc = self._require_proc()
        assert proc.stdout is not None
        assert proc.stderr is not None
        out, err = proc.stdout, proc.stderr
        assert self._guest_read is not None
        guest = os.fdopen(self._guest_read, "rb")
        self._guest_read = None
        self._guest_stream = guest
        self._thread("console", lambda: self._pump(out, self._console_line))
        self._thread("guest", lambda: self._pump(guest, self._guest_line))
        self._thread("stderr", lambda: self._pump(err, self.stderr_lines.append))

    def _streams(self) -> list[IO[bytes]]:
        extra = [self._guest_stream] if self._guest_stream is not None else []
        return super()._streams() + extra

    def _cleanup_extra(self) -> None:
        for fd in (self._guest_read, self._guest_write):  # a start that failed before the readers
            if fd is not None:
                os.close(fd)
        self._guest_read = self._guest_write = None
        if self.ram_path is not None:
            self.ram_path.unlink(missing_ok=True)

    def _returncode_note(self, status: StatusLine, returncode: int) -> str | None:
        expected = (status.code << 1) | 1
        if returncode != expected:
            return (
                f"QEMU exit status {returncode} does not match the status line "
                f"(isa-debug-exit would give {expected} = (code << 1) | 1)"
            )
        return None

    def emulator_error_text(self) -> str:
        return "\n".join(line for line in self.stderr_lines if line.strip())

    def _classify(self, returncode: int, timed_out: bool, limit: float, notes: list[str]) -> RunResult:
        result = super()._classify(returncode, timed_out, limit, notes)
        if result.status is not None and (self.cpu_model is not None or self.qemu_args):
            # What QEMU warned about the user's options (e.g. a feature TCG drops) would go unseen.
            result.notes.extend(f"QEMU said: {line}" for line in self.stderr_lines if line.strip())
        return result

    def _classify_no_status(self, returncode: int) -> tuple[ExitCode, str]:
        err = self.emulator_error_text()
        detail = f":\n{err}" if err else ""
        if returncode < 0:
            return (
                ExitCode.EMULATOR_FAILED,
                f"QEMU died (signal {-returncode}) before the hypervisor printed its status{detail}",
            )
        if returncode == 0:
            return (
                ExitCode.NO_STATUS,
                "QEMU exited without a final status line (guest shutdown or reset, e.g. a triple fault "
                f"with -no-reboot){detail}",
            )
        if err:
            return (
                ExitCode.EMULATOR_FAILED,
                f"QEMU refused the configuration or failed (exit status {returncode}){detail}",
            )
        if returncode & 1:
            return (
                ExitCode.NO_STATUS,
                f"the hypervisor left QEMU through isa-debug-exit (value {returncode >> 1}) without "
                "printing a final status line",
            )
        return ExitCode.EMULATOR_FAILED, f"QEMU failed (exit status {returncode}) without a status line"
