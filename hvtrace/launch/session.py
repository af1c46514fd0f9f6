"""Common emulator session: start, stream console lines, wait for the final status, stop, clean up.

Use it as a context manager; leaving the ``with`` block always stops the emulator and removes the
session's temporary files, whatever happened inside::

    with QemuSession(cpus=4, on_line=print) as s:
        print(s.gdb_port, s.qmp_socket, s.ram_path)
        result = s.wait()
    raise SystemExit(result.exit_code)

Console lines are delivered from reader threads through ``on_line`` and collected in ``lines``.
Two consoles feed them: the hypervisor's private channel (COM2, hidden from the guest, and port 0xE9)
and the guest's console (COM1). ``hv_lines`` and ``guest_lines`` keep them apart; the final status
line is taken from the private channel only, so nothing a guest prints can pass for it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, ClassVar, Self, TypedDict

from hvtrace.abi import HvStatus
from hvtrace.exitcodes import ExitCode, LaunchError
from hvtrace.image import ensure_image
from hvtrace.launch import procs
from hvtrace.launch.guest import GuestSpec
from hvtrace.status import StatusLine, parse_status_line

LineCallback = Callable[[str], None]


@dataclass
class RunResult:
    """How a run ended. ``exit_code`` is what `hvtrace run` exits with."""

    exit_code: int
    message: str
    status: StatusLine | None = None
    returncode: int | None = None
    timed_out: bool = False
    notes: list[str] = field(default_factory=list)
    kept_dir: Path | None = None


class SessionOptions(TypedDict, total=False):
    """What every backend's session takes (see :class:`Session`); backends add their own keywords."""

    cpus: int
    memory_mb: int
    cmdline: str
    timeout: float | None
    elf: Path | None
    on_line: LineCallback | None
    on_info: LineCallback | None
    guest: GuestSpec | None


class Session(ABC):
    """One emulator run of the hypervisor image. Subclasses supply argv and the console source."""

    backend: ClassVar[str]
    #: Hypervisor options a trace capture needs on this backend (none: the rings are read from shared RAM).
    trace_options: ClassVar[tuple[str, ...]] = ()
    #: Seconds to wait for the final status line when the caller gives no timeout.
    default_timeout: ClassVar[float] = 120.0
    #: Seconds the emulator may take to leave by itself after printing the status line.
    exit_grace: ClassVar[float] = 15.0
    #: Whether the hypervisor's status line is always followed by the emulator's exit within
    #: ``exit_grace``: then a status line without that exit does not end the wait (a second guard;
    #: the first is that only the private channel, which the guest cannot write, is read for it).
    status_needs_exit: ClassVar[bool] = False
    #: Signal that asks the emulator to stop cleanly; SIGKILL follows after ``stop_grace``.
    stop_signal: ClassVar[int] = signal.SIGTERM
    stop_grace: ClassVar[float] = 5.0

    def __init__(
        self,
        *,
        cpus: int = 1,
        memory_mb: int = 256,
        cmdline: str = "",
        timeout: float | None = None,
        elf: Path | None = None,
        on_line: LineCallback | None = None,
        on_info: LineCallback | None = None,
        guest: GuestSpec | None = None,
    ) -> None:
        if cpus < 1:
            raise LaunchError(ExitCode.USAGE, f"--cpus must be at least 1 (got {cpus})")
        if timeout is not None and timeout <= 0:
            raise LaunchError(ExitCode.USAGE, f"--timeout must be positive (got {timeout:g})")
        self.cpus = cpus
        self.memory_mb = memory_mb
        self.cmdline = cmdline
        self.timeout = timeout if timeout is not None else self.default_timeout
        self.elf = elf
        self.on_line = on_line
        self.on_info = on_info
        #: The guest kernel the hypervisor boots (multiboot modules), or None for its own test guests.
        self.guest = guest

        #: Every console line in arrival order: the hypervisor's and the guest's.
        self.lines: list[str] = []
        #: The hypervisor's private channel (its console and status line) and the guest's COM1, apart.
        self.hv_lines: list[str] = []
        self.guest_lines: list[str] = []
        self.status: StatusLine | None = None
        self.argv: list[str] = []
        self.proc: subprocess.Popen[bytes] | None = None
        self.tmpdir: Path | None = None
        self.result: RunResult | None = None
        self._status_event = threading.Event()
        self._lines_lock = threading.Lock()
        #: Serializes ``on_line`` calls: two readers (the hypervisor's channel, the guest's console)
        #: deliver lines concurrently, and a callback that prints must not interleave them.
        self._callback_lock = threading.Lock()
        self._readers: list[threading.Thread] = []
        self._closing = threading.Event()
        self._started_at = 0.0
        self._closed = False

    # ----------------------------------------------------------------- backend hooks
    @abstractmethod
    def check_tools(self) -> None:
        """Raise LaunchError(TOOL_MISSING / USAGE) when this backend cannot run here."""

    @abstractmethod
    def _prepare(self, elf: Path) -> list[str]:
        """Create the run's files in ``self.tmpdir`` and return the emulator argv."""

    @abstractmethod
    def _start_readers(self) -> None:
        """Start the threads that feed ``_console_line`` (private channel) and ``_guest_line`` (COM1)."""

    @abstractmethod
    def _returncode_note(self, status: StatusLine, returncode: int) -> str | None:
        """Cross-check of the emulator's exit status against the status line (None when consistent)."""

    @abstractmethod
    def _classify_no_status(self, returncode: int) -> tuple[ExitCode, str]:
        """Exit code and message when the emulator ended without a final status line."""

    def _keep_tmpdir(self, result: RunResult) -> bool:
        """Whether to keep the temp dir for post-mortem (backends with useful logs override)."""
        return False

    def _cleanup_extra(self) -> None:  # noqa: B027 (optional hook)
        """Remove files the backend created outside ``self.tmpdir``."""

    # ----------------------------------------------------------------- lifecycle
    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def info(self, message: str) -> None:
        if self.on_info is not None:
            self.on_info(message)

    def start(self) -> None:
        """Check tools, build the image if needed, prepare files and start the emulator."""
        if self.proc is not None:
            raise RuntimeError("session already started")
        self.check_tools()
        if self.guest is not None:
            self.guest.verify()
            g = self.guest
            initrd = f", initrd {g.initrd}" if g.initrd is not None else ""
            self.info(f"guest kernel {g.kernel}{initrd}, command line {g.cmdline!r}")
        elf = self.elf if self.elf is not None else ensure_image()
        # The owner pid in the name lets later runs sweep dirs of hvtrace processes that were SIGKILLed.
        self.tmpdir = Path(tempfile.mkdtemp(prefix=f"hvtrace-{self.backend}-{os.getpid()}-"))
        try:
            self.argv = self._prepare(elf)
            self.proc = self._spawn()
            self._started_at = time.monotonic()
            self.info(f"{self.backend} pid {self.proc.pid}")
            self._start_readers()
        except BaseException:
            self.close()
            raise

    def _spawn(self) -> subprocess.Popen[bytes]:
        assert self.tmpdir is not None
        return procs.spawn(self.argv, cwd=self.tmpdir)

    def wait(self, timeout: float | None = None) -> RunResult:
        """Block until the final status line, the emulator's exit, or the timeout; then classify."""
        if self.result is not None:
            return self.result
        proc = self._require_proc()
        limit = self.timeout if timeout is None else timeout
        deadline = self._started_at + limit
        timed_out = False
        notes: list[str] = []
        while True:
            if self._status_event.wait(0.05):
                try:
                    proc.wait(timeout=self.exit_grace)
                except subprocess.TimeoutExpired:
                    if self.status_needs_exit and time.monotonic() < deadline:
                        self._ignore_status(notes)
                        continue
                    grace = f"{self.exit_grace:g} s"
                    notes.append(f"{self.backend} did not exit within {grace} of the status line")
                    self.stop()
                break
            if proc.poll() is not None:
                self._join_readers(10.0)
                break
            if time.monotonic() >= deadline:
                timed_out = True
                break
        if timed_out:
            self.stop()
        self._join_readers(10.0)
        self._after_exit()
        returncode = proc.wait()
        self.result = self._classify(returncode, timed_out and self.status is None, limit, notes)
        if self._keep_tmpdir(self.result):
            self.result.kept_dir = self.tmpdir
        return self.result

    def _ignore_status(self, notes: list[str]) -> None:
        """A status line the emulator did not leave after: the hypervisor leaves at once, so this is
        not the end of the run (the private channel should never carry another's line, but a run
        that goes on is not over); keep waiting for the real end."""
        with self._lines_lock:
            st, self.status = self.status, None
            self._status_event.clear()
        if st is not None:
            notes.append(
                f"ignored a status line {self.backend} did not exit after (the hypervisor leaves at once): "
                f"{st.line}"
            )

    def stop(self) -> None:
        """Stop the emulator (gentle signal to its group, SIGKILL after a grace period)."""
        if self.proc is not None:
            procs.stop(self.proc, first=self.stop_signal, grace=self.stop_grace)

    def close(self) -> None:
        """Stop the emulator if running, join readers, remove temp files (idempotent)."""
        if self._closed:
            return
        self._closed = True
        # A SIGINT/SIGTERM arriving now must not cut the cleanup short: hold them until it is done
        # (they are delivered right after, and the caller still sees them).
        main = threading.current_thread() is threading.main_thread()
        held = {signal.SIGINT, signal.SIGTERM}
        old = signal.pthread_sigmask(signal.SIG_BLOCK, held) if main else None
        try:
            self._close()
        finally:
            if old is not None:
                signal.pthread_sigmask(signal.SIG_SETMASK, old)

    def _close(self) -> None:
        try:
            self.stop()
        finally:
            self._closing.set()
            self._join_readers(10.0)
            for stream in self._streams():
                stream.close()
            self._cleanup_extra()
            keep = self.result is not None and self.result.kept_dir is not None
            if self.tmpdir is not None and not keep:
                shutil.rmtree(self.tmpdir, ignore_errors=True)

    # ----------------------------------------------------------------- helpers for backends
    def _after_exit(self) -> None:  # noqa: B027 (optional hook)
        """Called once the emulator is gone and the readers are drained (backends may add lines)."""

    def _require_proc(self) -> subprocess.Popen[bytes]:
        if self.proc is None:
            raise RuntimeError("session not started")
        return self.proc

    def _streams(self) -> list[IO[bytes]]:
        if self.proc is None:
            return []
        return [s for s in (self.proc.stdout, self.proc.stderr) if s is not None]

    def _console_line(self, line: str) -> None:
        """One line of the hypervisor's private channel (no line terminator): the only source of the
        run's status line. The guest can neither see nor write that channel (COM2 is hidden from it,
        its port-0xE9 bytes go to its own console), so its single status line is the hypervisor's; a
        later one still replaces an earlier one (the last before the emulator leaves counts)."""
        with self._lines_lock:
            self.lines.append(line)
            self.hv_lines.append(line)
            st = parse_status_line(line)
            if st is not None:
                self.status = st
                self._status_event.set()
        self._deliver(line)

    def _guest_line(self, line: str) -> None:
        """One line of the guest's console (COM1): shown and kept, never taken for a status line."""
        with self._lines_lock:
            self.lines.append(line)
            self.guest_lines.append(line)
        self._deliver(line)

    def _deliver(self, line: str) -> None:
        if self.on_line is not None:
            with self._callback_lock:
                self.on_line(line)

    def _tail_file(self, path: Path, sink: Callable[[str], None]) -> str:
        """Follow ``path`` (a file the emulator writes a serial port to), giving complete lines to
        ``sink`` as they appear, until the emulator exits or the session closes; returns the last,
        unterminated line (or '')."""
        proc = self._require_proc()
        buf = b""
        fh = None
        try:
            while True:
                exited = proc.poll() is not None or self._closing.is_set()
                if fh is None and path.exists():
                    fh = path.open("rb")
                chunk = fh.read() if fh is not None else b""
                if chunk:
                    buf += chunk
                    *complete, buf = buf.split(b"\n")
                    for raw in complete:
                        sink(raw.decode("utf-8", errors="replace").rstrip("\r"))
                    continue
                if exited:
                    break
                time.sleep(0.05)
        finally:
            if fh is not None:
                fh.close()
        return buf.decode("utf-8", errors="replace").rstrip("\r")

    def _tail_guest_console(self, path: Path) -> None:
        """Follow the guest's console file; its last line counts even without a line end."""
        partial = self._tail_file(path, self._guest_line)
        if partial:
            self._guest_line(partial)

    def _thread(self, name: str, target: Callable[[], None]) -> None:
        t = threading.Thread(target=target, name=f"hvtrace-{self.backend}-{name}", daemon=True)
        t.start()
        self._readers.append(t)

    def _join_readers(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for t in self._readers:
            t.join(max(0.0, deadline - time.monotonic()))

    @staticmethod
    def _pump(stream: IO[bytes], sink: Callable[[str], None]) -> None:
        """Read ``stream`` line by line until EOF, decoding leniently, CR/LF stripped."""
        for raw in iter(stream.readline, b""):
            sink(raw.decode("utf-8", errors="replace").rstrip("\r\n"))

    def _classify(self, returncode: int, timed_out: bool, limit: float, notes: list[str]) -> RunResult:
        st = self.status
        if st is not None:
            problem = st.consistency_problem()
            if problem is not None:
                notes.append(f"inconsistent status line: {problem}")
            note = self._returncode_note(st, returncode)
            if note is not None:
                notes.append(note)
            if st.guest_code is not None and st.guest_code > HvStatus.MAX:
                notes.append(
                    f"the guest's code {st.guest_code} is beyond the status range 0..{int(HvStatus.MAX)}: "
                    f"exit code {int(HvStatus.FAIL)}"
                )
            return RunResult(
                exit_code=st.exit_code,
                message=st.describe(),
                status=st,
                returncode=returncode,
                notes=notes,
            )
        if timed_out:
            return RunResult(
                exit_code=ExitCode.TIMEOUT,
                message=(
                    f"timeout: the hypervisor printed no final status line within {limit:g} s "
                    f"({self.backend} stopped)"
                ),
                returncode=returncode,
                timed_out=True,
                notes=notes,
            )
        code, message = self._classify_no_status(returncode)
        return RunResult(exit_code=code, message=message, returncode=returncode, notes=notes)
