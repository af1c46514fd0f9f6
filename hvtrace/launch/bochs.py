"""Bochs backend: Intel VT-x + EPT (Bochs 2.7, corei7_skylake_x), booted from a GRUB ISO.

Debian's Bochs is a debugger build: it stops at a prompt at t=0, so it runs with a debugger script
whose first line is ``c`` (continue) and whose next line ``quit`` runs when the hypervisor hits its
magic breakpoint (``xchg bx,bx``, after the final status line) or when we send SIGINT (timeout/stop).

Consoles: the hypervisor writes its console and status line to COM2 (hidden from the guest by I/O
intercepts, hv/core/io_policy.c) and to port 0xE9, which the guest cannot write either (its bytes there
go to its own console). COM1 is the guest's. Measured: 0xE9 lands on Bochs' stdout mixed with the
debugger's own chatter, while a UART in ``mode=file`` gives a clean file that Bochs writes as the UART
sends. We therefore follow com2.txt for the live hypervisor console and guest-console.txt (COM1) for the
guest's, and read stdout only as a backstop for the status line (the UART may still hold the last
bytes when Bochs quits). Only the private channel's status line counts.

The magic breakpoint (``xchg bx,bx``) that ends the run is an emulator feature any code can execute,
the guest's too: it stops Bochs (the debugger script's ``quit``), but it is never taken as a sign the
hypervisor finished. Without the private channel's status line the run reports no status, naming a
magic breakpoint Bochs reported before (the guest's, then).
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Callable
from pathlib import Path
from typing import IO, ClassVar, Unpack

from hvtrace.exitcodes import ExitCode, LaunchError
from hvtrace.image import ensure_iso
from hvtrace.launch.gdb_relay import GdbRelay
from hvtrace.launch.session import RunResult, Session, SessionOptions
from hvtrace.status import StatusLine, parse_status_line
from hvtrace.tools import BOCHS_BIOS, GRUB_I386_PC, VGA_BIOS, require_file, require_tool

BOCHS = "bochs"
CPU_MODEL = "corei7_skylake_x"
IPS = 5_000_000

#: What Bochs' debugger prints on stdout when a CPU executes ``xchg bx,bx`` (magic_break enabled).
_MAGIC_BREAK = "Magic breakpoint"
_EXIT_BANNER = "Bochs is exiting with the following message:"
_TRIPLE_RE = re.compile(r"3rd \(\d+\) exception with no resolution|triple fault|shutdown", re.IGNORECASE)
_LOG_PROBLEM_RE = re.compile(r"^\d+[ep]\[")


def bochsrc_text(
    *,
    iso: Path,
    cpus: int,
    memory_mb: int,
    log: Path,
    serial: Path,
    guest_console: Path | None = None,
    bios: Path = BOCHS_BIOS,
    vgabios: Path = VGA_BIOS,
    os_guest: bool = False,
    gdb_socket: int | None = None,
) -> str:
    """The bochsrc for one run (pure function; unit-tested). ``serial``: the file COM2, the hypervisor's
    private channel, goes to; ``guest_console``: COM1's (the guest's console; default: no COM1).
    ``gdb_socket``: COM3, the resident gdb stub's UART (hypervisor option gdbstub=1), as a TCP server
    on that loopback port (Bochs waits in accept() at start until a client connects: hvtrace's relay,
    hvtrace/launch/gdb_relay.py, connects at once and passes gdb's connections on).

    ``ignore_bad_msrs=0``: an MSR Bochs lacks raises #GP, as on hardware, for the hypervisor and its
    self-test. With a guest OS (``os_guest``) Bochs' default, 1, is kept: Bochs 2.7 lacks MSRs every
    Intel family-6 CPU has and Linux reads unguarded (IA32_MISC_ENABLE 0x1a0 in verify_cpu, the MCA
    banks), so bare Linux only boots on Bochs that way, and the guest must see the same platform.
    """
    return "\n".join(
        [
            f"megs: {memory_mb}",
            f"romimage: file={bios}",
            f"vgaromimage: file={vgabios}",
            f"cpu: model={CPU_MODEL}, count={cpus}, ips={IPS}, reset_on_triple_fault=0, "
            f"ignore_bad_msrs={int(os_guest)}",
            f"ata0-master: type=cdrom, path={iso}, status=inserted",
            "boot: cdrom",
            # This build has no nogui/term display; rfb with timeout=0 never waits for a client.
            'display_library: rfb, options="timeout=0"',
            # Without dummy sound drivers Bochs aborts at start when ALSA is unavailable.
            "sound: waveoutdrv=dummy, waveindrv=dummy, midioutdrv=dummy",
            "speaker: enabled=0",
            f"log: {log}",
            # A misaligned read of the xAPIC page reaches Bochs' APIC straight through the hypervisor's
            # read-only mapping (reads are not trapped: an exit per read would tax every guest), and
            # there it is a failed assertion, a panic ("(addr & 0xf) == 0", apic.cc). SDM Vol. 3A 11.4.1
            # makes such accesses undefined / model specific, not a machine stop: per CPU's APIC (module
            # apicN) the panic is reported in bochs.log and the read returns the aligned register.
            "panic: action=fatal, " + ", ".join(f"apic{n}=report" for n in range(cpus)),
            # COM1 (0x3f8) is the guest's; COM2 (0x2f8) the hypervisor's, hidden from the guest.
            f"com1: enabled=1, mode=file, dev={guest_console}" if guest_console else "com1: enabled=0",
            f"com2: enabled=1, mode=file, dev={serial}",
            *([f"com3: enabled=1, mode=socket-server, dev=127.0.0.1:{gdb_socket}"] if gdb_socket else []),
            "port_e9_hack: enabled=1",
            "magic_break: enabled=1",
            "clock: sync=none",
            "",
        ]
    )


#: Debugger script: continue at t=0; `quit` runs at the magic breakpoint or on SIGINT.
DEBUGGER_SCRIPT = "c\nquit\n"


def dump_ranges(memory_mb: int) -> list[tuple[int, int]]:
    """Guest-physical ranges the dump covers: (start, length). ``writemem`` stops at the first byte
    that is not RAM (measured: it ends at the VGA window 0xA0000), so low memory and the RAM above 1 MiB
    go to separate files."""
    return [(0, 0xA0000), (0x100000, (memory_mb << 20) - 0x100000)]


def dump_commands(dump: Path, memory_mb: int) -> list[str]:
    """``writemem`` commands putting guest RAM into ``<dump>.<start in hex>``, one file per dump range."""
    return [f'writemem "{dump}.{start:x}" {start:#x} {length}' for start, length in dump_ranges(memory_mb)]


def debugger_script(dump: Path | None = None, memory_mb: int = 0, before_at: int | None = None) -> str:
    """The debugger script; with ``dump``, guest RAM goes to ``<dump>.<start in hex>`` before ``quit``.
    With ``before_at`` too, RAM first goes to ``<dump>-before.<start in hex>`` at the first VM exit
    after a CPU executed that physical address (Bochs ``pb``, then ``vmexitbp``): a view from outside the
    machine at a known point after launch (``before_at``: the loaded guest's entry). Not at the
    breakpoint itself: in the guest ``writemem`` translates through EPT and stops at the first
    hypervisor page (measured: "physical address not available"); after a VM exit the CPU is in the
    hypervisor, whose identity map covers all of it.

    ``writemem`` takes a linear address: the hypervisor identity-maps low memory, so linear == physical
    while the CPU is in the hypervisor (magic breakpoint) as well as in the identity-mapped guests.
    """
    if dump is None:
        return DEBUGGER_SCRIPT
    cmds = []
    if before_at is not None:
        before = dump.with_name(f"{dump.name}-before")
        cmds = [
            f"pb {before_at:#x}",
            "c",
            "d 1",
            "vmexitbp",
            "c",
            *dump_commands(before, memory_mb),
            "vmexitbp",
        ]
    return "\n".join([*cmds, "c", *dump_commands(dump, memory_mb), "quit", ""])


def bochs_exit_message(lines: list[str]) -> str:
    """The text Bochs prints after 'Bochs is exiting with the following message:' (or '')."""
    for i, line in enumerate(lines):
        if _EXIT_BANNER in line:
            body = []
            for nxt in lines[i + 1 :]:
                if nxt.startswith("====="):
                    break
                body.append(nxt.strip())
            return "\n".join(b for b in body if b)
    return ""


class BochsSession(Session):
    """The hypervisor under Bochs. ``tmpdir`` holds bochsrc, script, bochs.log, com2.txt (the
    hypervisor's console) and guest-console.txt (COM1)."""

    backend: ClassVar[str] = "bochs"
    default_timeout: ClassVar[float] = 180.0
    #: No shared RAM file to read the rings from: the hypervisor sends its records as frames on port 0xE9.
    trace_options: ClassVar[tuple[str, ...]] = ("trace_e9=1",)
    exit_grace: ClassVar[float] = 20.0
    stop_signal: ClassVar[int] = signal.SIGINT
    stop_grace: ClassVar[float] = 10.0

    def __init__(
        self,
        *,
        dump_memory: bool = False,
        dump_before_at: int | None = None,
        gdb_port: int | None = None,
        **options: Unpack[SessionOptions],
    ) -> None:
        super().__init__(**options)
        #: With ``gdb_port`` (0: a free port): the hypervisor's resident gdb stub (gdbstub=1) on COM3,
        #: reached through :class:`GdbRelay` at 127.0.0.1:``gdb_port`` once started.
        self.gdb_relay: GdbRelay | None = None
        self.gdb_port = gdb_port
        if gdb_port is not None:
            if not 0 <= gdb_port < 65536:
                raise LaunchError(ExitCode.USAGE, f"--gdb port must be 1..65535 (got {gdb_port})")
            self.cmdline = f"{self.cmdline} gdbstub=1".strip()
        #: With ``dump_memory``: also dump RAM when a CPU first executes this physical address.
        self.dump_before_at = dump_before_at
        if self.guest is not None:
            self.guest.check_grub()  # the guest's command line goes into grub.cfg
        self.dump_memory = dump_memory
        #: Raw bytes of Bochs' stdout (port 0xE9: console text and, with trace_e9=1, record frames).
        self.e9_path: Path | None = None
        #: Guest RAM written by the debugger script before `quit` (only with ``dump_memory``): one file
        #: per range of :func:`dump_ranges`, named ``<dump_path>.<start in hex>``.
        self.dump_path: Path | None = None
        self.bochs = BOCHS
        self.stdout_lines: list[str] = []
        self.stderr_lines: list[str] = []
        #: COM2's output: the hypervisor's private channel (console and status line).
        self.serial_path: Path | None = None
        #: COM1's output: the guest's console.
        self.guest_console_path: Path | None = None
        self.log_path: Path | None = None
        self.iso: Path | None = None
        self._serial_partial = ""

    def check_tools(self) -> None:
        self.bochs = require_tool(BOCHS, "for the Bochs backend")
        require_file(BOCHS_BIOS, "for the Bochs backend")
        require_file(VGA_BIOS, "for the Bochs backend")
        for tool, why in (
            ("grub-mkrescue", "to build the GRUB ISO"),
            ("xorriso", "by grub-mkrescue"),
            ("mformat", "by grub-mkrescue"),
        ):
            require_tool(tool, why)
        require_file(GRUB_I386_PC, "by grub-mkrescue for BIOS boot")

    def _prepare(self, elf: Path) -> list[str]:
        assert self.tmpdir is not None
        self.iso = ensure_iso(elf, self.cmdline, self.guest)
        # Link the cached ISO under a plain name: bochsrc values must not contain spaces or commas.
        iso_link = self.tmpdir / "hvtrace.iso"
        iso_link.symlink_to(self.iso)
        self.serial_path = self.tmpdir / "com2.txt"
        self.guest_console_path = self.tmpdir / "guest-console.txt"
        self.log_path = self.tmpdir / "bochs.log"
        if self.gdb_port is not None:
            self.gdb_relay = GdbRelay(self.gdb_port)
            self.gdb_port = self.gdb_relay.port
            where = f"127.0.0.1:{self.gdb_port}"
            self.info(f"gdb port {self.gdb_port} (the hypervisor's gdb stub: target remote {where})")
        rc = self.tmpdir / "bochsrc"
        rc.write_text(
            bochsrc_text(
                iso=iso_link,
                cpus=self.cpus,
                memory_mb=self.memory_mb,
                log=self.log_path,
                serial=self.serial_path,
                guest_console=self.guest_console_path,
                os_guest=self.guest is not None,
                gdb_socket=self.gdb_relay.backend_port if self.gdb_relay else None,
            )
        )
        self.e9_path = self.tmpdir / "e9.bin"
        self.dump_path = self.tmpdir / "ram.bin" if self.dump_memory else None
        script = self.tmpdir / "debugger.rc"
        script.write_text(debugger_script(self.dump_path, self.memory_mb, self.dump_before_at))
        self.info(f"bochs dir {self.tmpdir} (bochsrc, bochs.log, com2.txt, guest-console.txt)")
        return [self.bochs, "-q", "-f", str(rc), "-rc", str(script)]

    def _start_readers(self) -> None:
        proc = self._require_proc()
        assert proc.stdout is not None
        assert proc.stderr is not None
        out, err = proc.stdout, proc.stderr
        self._thread("stdout", lambda: self._tee(out, self.stdout_lines.append))
        self._thread("stderr", lambda: self._pump(err, self.stderr_lines.append))
        hv, guest = self.serial_path, self.guest_console_path
        assert hv is not None
        assert guest is not None
        self._thread("serial", lambda: self._tail_serial(hv))
        self._thread("guest", lambda: self._tail_guest_console(guest))
        if self.gdb_relay is not None:
            self.gdb_relay.start()

    def dump_files(self, before: bool = False) -> list[tuple[int, Path]]:
        """(guest-physical start, file) of each memory dump range written at the end of the run (with
        ``before``: at ``dump_before_at``)."""
        if self.dump_path is None or (before and self.dump_before_at is None):
            return []
        base = f"{self.dump_path}-before" if before else str(self.dump_path)
        return [(start, Path(f"{base}.{start:x}")) for start, _ in dump_ranges(self.memory_mb)]

    def _tee(self, stream: IO[bytes], sink: Callable[[str], None]) -> None:
        """Copy stdout's raw bytes to ``e9_path`` as they come (frame stream) and its lines to ``sink``."""
        assert self.e9_path is not None
        fd = stream.fileno()
        buf = b""
        with self.e9_path.open("wb") as raw:
            while chunk := os.read(fd, 65536):
                raw.write(chunk)
                raw.flush()
                buf += chunk
                *complete, buf = buf.split(b"\n")
                for line in complete:
                    sink(line.decode("utf-8", errors="replace").rstrip("\r"))
        if buf:
            sink(buf.decode("utf-8", errors="replace").rstrip("\r"))

    def _tail_serial(self, path: Path) -> None:
        """Follow the private channel's file until Bochs exits; keep its unterminated tail."""
        self._serial_partial = self._tail_file(path, self._console_line)

    def _after_exit(self) -> None:
        # The UART may not have sent the status line's tail before `quit`: port 0xE9 output on
        # stdout is complete (and the hypervisor's alone: the guest's 0xE9 bytes are intercepted), so
        # take the status line from there when com2.txt lacks it. The last one counts.
        partial, self._serial_partial = self._serial_partial, ""
        e9_status = next((s for s in reversed([parse_status_line(x) for x in self.stdout_lines]) if s), None)
        if e9_status is not None:
            if self.status is None or self.status.line != e9_status.line:
                self._console_line(e9_status.line)
        elif partial and self.status is None:
            self._console_line(partial)

    def _returncode_note(self, status: StatusLine, returncode: int) -> str | None:
        if returncode != 0:
            return f"Bochs exit status {returncode} after the status line (expected 0 from the script's quit)"
        return None

    def emulator_error_text(self) -> str:
        return bochs_exit_message(self.stderr_lines + self.stdout_lines)

    def log_problems(self, limit: int = 12) -> list[str]:
        """The last error/panic lines of bochs.log (failed VM-entry checks are named there)."""
        if self.log_path is None or not self.log_path.is_file():
            return []
        text = self.log_path.read_text(errors="replace").splitlines()
        return [line for line in text if _LOG_PROBLEM_RE.match(line)][-limit:]

    def _cleanup_extra(self) -> None:
        if self.gdb_relay is not None:
            self.gdb_relay.close()

    def _classify_no_status(self, returncode: int) -> tuple[ExitCode, str]:
        msg = self.emulator_error_text()
        detail = f":\n{msg}" if msg else ""
        if any(_MAGIC_BREAK in line for line in self.stdout_lines):
            # The hypervisor's own magic breakpoint follows its status line: this one is the guest's.
            return (
                ExitCode.NO_STATUS,
                "Bochs stopped at a magic breakpoint (xchg bx,bx) before the hypervisor's status line: "
                "the guest executed it",
            )
        if msg and _TRIPLE_RE.search(msg):
            return ExitCode.NO_STATUS, f"Bochs stopped without a final status line (triple fault){detail}"
        if msg or returncode != 0:
            when = "before the hypervisor printed anything" if not self.hv_lines else "before the status line"
            return (
                ExitCode.EMULATOR_FAILED,
                f"Bochs refused the configuration or failed (exit status {returncode}) {when}{detail}",
            )
        return ExitCode.NO_STATUS, f"Bochs exited (status {returncode}) without a final status line"

    def _classify(self, returncode: int, timed_out: bool, limit: float, notes: list[str]) -> RunResult:
        result = super()._classify(returncode, timed_out, limit, notes)
        if self._keep_tmpdir(result) and self.log_path is not None:
            problems = self.log_problems()
            result.notes.append(f"bochs.log kept: {self.log_path}")
            if problems:
                result.notes.append("last errors in bochs.log:\n  " + "\n  ".join(problems))
        return result

    def _keep_tmpdir(self, result: RunResult) -> bool:
        # A guest's own nonzero exit (guest_debug_exit) is no failure of the hypervisor or of Bochs.
        hv_passed = result.status is not None and result.status.code == 0
        return result.exit_code != 0 and not hv_passed
