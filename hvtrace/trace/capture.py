"""Capture: boot a session or attach to one, read its exit records, stop on a condition, keep them.

Python API::

    with Capture.start(backend="qemu", cpus=2, cmdline="storm=1") as cap:
        recs = cap.collect(count=10000)          # numpy structured array (records.RECORD_DTYPE)
    with Capture.attach(ram=Path("/dev/shm/hvtrace-….ram")) as cap:
        cap.record("x.hvt", duration=5)

QEMU: the shared RAM file, rings read live and lossless (the consumer writes ring tails). A session
started here also gets ``ring_wait=RING_WAIT_S``: until the reader attaches (and while it is behind)
a full ring makes its CPU wait instead of dropping, so nothing is lost from the first exit. Bochs: the
port-0xE9 frame stream (``trace_e9=1`` is added to the command line), read as Bochs writes it.
With guest memory at hand (QEMU), :meth:`Capture.record` also stores the instruction bytes at every
distinct RIP in the file (its code map, see hvtrace.trace.code), so a replay can show the instructions.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import numpy as np

from hvtrace.decode.vendor import VMX
from hvtrace.exitcodes import ExitCode
from hvtrace.launch import BochsSession, QemuSession, Session, make_session, session_class
from hvtrace.launch.guest import GuestSpec
from hvtrace.launch.memory import GUEST_MIN_MEMORY_MB
from hvtrace.launch.qemu import qemu_argv_of_ram
from hvtrace.paths import image_path
from hvtrace.relocation import region_from_console
from hvtrace.trace.code import CodeCollector, CodeReader, MemoryCode, PagedCode
from hvtrace.trace.discovery import Discovery, discover, elf_build_id, elf_symbol
from hvtrace.trace.errors import TraceError
from hvtrace.trace.filters import Filter, reason_mask
from hvtrace.trace.frames import FrameStreamSource
from hvtrace.trace.reader import RingSet
from hvtrace.trace.records import Records, empty
from hvtrace.trace.sources import MemorySource, SharedRamSource
from hvtrace.trace.streams import FrameStream, RecordStream, RingStream
from hvtrace.trace.tracefile import TraceWriter
from hvtrace.trace.tsc_rate import PIT_EMULATED_SOURCE, PIT_SOURCE, ArrivalClock
from hvtrace.trace.tsc_rate import SOURCE as TSC_RATE_SOURCE

NO_BACKEND_RE = re.compile(r"virt: this CPU offers neither VT-x nor AMD-V")
TSC_RE = re.compile(r"timer: TSC (\d+) kHz")
RAM_NAME_RE = re.compile(r"hvtrace-(\d+)-[0-9a-f]+\.ram$")
#: How long a full ring waits for its reader (hypervisor ``ring_wait=S``) in sessions a lossless capture
#: starts: the reader attaches within seconds of boot; past this the ring drops and counts instead.
RING_WAIT_S = 30


def guest_label(cmdline: str, guest: GuestSpec | None = None) -> str:
    """What a started session runs, as ``meta["guest"]`` names it: a loaded kernel's file name, else the
    hypervisor's own test guest (``selftest``, ``selftest+storm`` with ``storm=1`` on ``cmdline``)."""
    if guest is not None:
        return guest.name
    return "selftest" + ("+storm" if "storm=1" in cmdline.split() else "")


@dataclass
class Progress:
    records: int = 0
    lost: int = 0
    started: float = 0.0

    def line(self) -> str:
        dt = max(time.monotonic() - self.started, 1e-9)
        return f"capture: {self.records} records, {self.records / dt:,.0f}/s, lost {self.lost}"


class Capture:
    """A record source (live or post mortem) plus, when we started it, the emulator session."""

    def __init__(
        self,
        stream: RecordStream,
        *,
        vendor: int,
        meta: dict[str, Any],
        session: Session | None = None,
    ) -> None:
        self.stream = stream
        self.vendor = vendor
        self.meta = meta
        self.session = session
        self.progress = Progress(started=time.monotonic())
        self.stop_reason = ""
        self.arrivals = ArrivalClock()

    # ----------------------------------------------------------------- constructors
    @classmethod
    def start(
        cls,
        *,
        backend: str = "qemu",
        cpus: int = 1,
        memory_mb: int | None = None,
        cmdline: str = "",
        timeout: float = 600.0,
        elf: Path | None = None,
        lossless: bool = True,
        on_line: Callable[[str], None] | None = None,
        on_info: Callable[[str], None] | None = None,
        boot_timeout: float = 60.0,
        guest: GuestSpec | None = None,
        cpu_model: str | None = None,
        qemu_args: Sequence[str] = (),
        gdb_port: int | None = None,
        gdb_stub: str | None = None,
    ) -> Capture:
        """Boot the hypervisor under ``backend`` and attach to its records. ``on_info`` gets the session's
        own lines (emulator pid, RAM file, gdb port), as `hvtrace run` prints them. ``cmdline`` is the
        hypervisor's; ``guest`` a kernel it boots (then ``memory_mb`` defaults to GUEST_MIN_MEMORY_MB,
        else to 64). ``cpu_model``/``qemu_args``: the user's ``--cpu-model``/``--qemu-arg`` (QEMU only);
        ``gdb_port``/``gdb_stub``: ``--gdb``/``--gdb-stub`` (Bochs: a port starts the resident stub)."""
        if memory_mb is None:
            memory_mb = GUEST_MIN_MEMORY_MB if guest is not None else 64
        kind, words = session_class(backend), cmdline.split()
        extra = [o for o in kind.trace_options if o not in words]
        if lossless and issubclass(kind, QemuSession) and not any(w.startswith("ring_wait=") for w in words):
            extra.append(f"ring_wait={RING_WAIT_S}")  # rings read from shared RAM: wait for the reader
        if extra:  # what this backend needs to deliver records (Bochs: frames on port 0xE9)
            cmdline = " ".join([cmdline, *extra]).strip()
        session = make_session(
            backend, cpus=cpus, memory_mb=memory_mb, cmdline=cmdline, timeout=timeout, elf=elf,
            on_line=on_line, on_info=on_info, guest=guest, cpu_model=cpu_model, qemu_args=qemu_args,
            gdb_port=gdb_port, gdb_stub=gdb_stub,
        )  # fmt: skip
        session.start()
        try:
            cap = cls._attach_session(
                session, backend, cmdline, lossless=lossless, boot_timeout=boot_timeout, elf=elf
            )
        except BaseException:
            session.close()
            raise
        if guest is not None:
            cap.meta.update(guest=guest_label(cmdline, guest), guest_cmdline=guest.cmdline)
        return cap

    @classmethod
    def _attach_session(
        cls,
        session: Session,
        backend: str,
        cmdline: str,
        *,
        lossless: bool,
        boot_timeout: float,
        elf: Path | None,
    ) -> Capture:
        image = elf or image_path()
        meta: dict[str, Any] = {
            "backend": backend,
            "cmdline": cmdline,
            "cpus": session.cpus,
            "guest": guest_label(cmdline),
            "build_id": elf_build_id(image),
        }
        proc = session.proc
        assert proc is not None

        def running() -> bool:
            return proc.poll() is None

        if isinstance(session, BochsSession):
            assert session.e9_path is not None
            meta.update(vendor=VMX.number, vendor_name=VMX.name, source="port 0xE9 frame stream")
            frames = FrameStream(FrameStreamSource(session.e9_path, alive=running))
            return cls(frames, vendor=VMX.number, meta=meta, session=session)
        assert isinstance(session, QemuSession)
        assert session.ram_path is not None
        ram = session.ram_path
        elf_symbol(image)  # read the symbol table now, while QEMU boots; discover() finds it remembered
        deadline = time.monotonic() + boot_timeout
        while True:
            exited = not running()  # sampled first: one more look at memory after QEMU is gone
            if any(NO_BACKEND_RE.search(line) for line in list(session.hv_lines)):
                raise TraceError(
                    ExitCode.NO_TRACE_HEADER,
                    "no back end: the hypervisor says 'this CPU offers neither VT-x nor AMD-V' "
                    "(no rings to read)",
                )
            # Scan only the image the hypervisor announced on its private channel (never guest RAM).
            image_range = region_from_console(list(session.hv_lines))
            if image_range is not None and ram.exists() and ram.stat().st_size >= session.memory_mb << 20:
                src = SharedRamSource(ram, pid=proc.pid)
                try:
                    start, end = image_range
                    disc = discover(src, elf=image, scan_ranges=[(start, end - start)])
                    if disc.rings and len(disc.rings) >= disc.cpu_count > 0:
                        break
                except TraceError as e:
                    if e.code == ExitCode.ABI_MISMATCH:
                        raise
                src.close()
            if exited and session.wait(timeout=5).exit_code == ExitCode.EMULATOR_FAILED:
                # QEMU refused the configuration (a --cpu-model or --qemu-arg it does not know): its words.
                assert session.result is not None
                raise TraceError(ExitCode.EMULATOR_FAILED, session.result.message)
            if exited or time.monotonic() > deadline:
                raise TraceError(
                    ExitCode.NO_TRACE_HEADER,
                    f"{ram}: the hypervisor registered no rings "
                    + ("before QEMU exited" if exited else f"within {boot_timeout:g} s"),
                )
            time.sleep(0.02)
        return cls._from_discovery(src, disc, meta, lossless, session)

    @classmethod
    def _from_discovery(
        cls,
        src: SharedRamSource,
        disc: Discovery,
        meta: dict[str, Any],
        lossless: bool,
        session: Session | None,
    ) -> Capture:
        rings = RingSet(src, disc, lossless=lossless)
        meta.update(
            vendor=disc.vendor,
            vendor_name=disc.vendor_name,
            build_id=disc.build_id,
            cpus=disc.cpu_count,
            ring_capacity=rings.readers[0].capacity,
            ring_policy=rings.readers[0].policy_name(),
            source="shared RAM file" + (" (lossless: consumer tail)" if lossless else ""),
        )
        return cls(RingStream(rings), vendor=disc.vendor, meta=meta, session=session)

    @classmethod
    def attach(cls, *, ram: Path, elf: Path | None = None, lossless: bool = True) -> Capture:
        """Attach to a running `hvtrace run` session by its RAM file (printed as 'hvtrace: ram file …')."""
        ram = Path(ram)
        src = SharedRamSource(ram)
        m = RAM_NAME_RE.search(ram.name)
        src.pid = int(m.group(1)) if m else None
        if not src.alive():
            src.close()
            raise TraceError(ExitCode.NO_INPUT, f"{ram}: the session that owns this RAM file is gone")
        # No private channel to ask: by the symbol, else a scan where the highest header wins (discovery).
        disc = discover(src, elf=elf or image_path())
        meta: dict[str, Any] = {"backend": "qemu", "cmdline": None, "guest": None, "attached": str(ram)}
        qemu_args = qemu_argv_of_ram(ram) or []
        if "-initrd" in qemu_args[:-1]:  # a guest kernel: module 0 is "KERNEL ARGS" (hvtrace.launch.guest)
            kernel, _, args = qemu_args[qemu_args.index("-initrd") + 1].split(",")[0].partition(" ")
            meta.update(guest=Path(kernel).name, guest_cmdline=args)
        return cls._from_discovery(src, disc, meta, lossless, None)

    # ----------------------------------------------------------------- lifecycle
    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self.stream.detach()  # first: a session that goes on must not wait for us
        if self.session is not None:
            self.session.close()
            self.session = None
        rings = getattr(self.stream, "rings", None)
        if rings is not None:
            rings.source.close()

    @property
    def memory(self) -> MemorySource | None:
        """The guest memory the records come from (QEMU's shared RAM file), None for a frame stream."""
        rings = getattr(self.stream, "rings", None)
        return rings.source if rings is not None else None

    def code_reader(self) -> CodeReader | None:
        """Instruction bytes at a RIP, read from guest memory; None without memory (Bochs frame stream).
        The hypervisor's own guests are identity-mapped (RIP as physical address); a loaded guest kernel
        (``meta["guest_cmdline"]`` set) has its own paging: its RIPs go through a walk of its page
        tables from each record's CR3 (see hvtrace.trace.code)."""
        mem = self.memory
        if mem is None:
            return None
        return PagedCode(mem) if self.meta.get("guest_cmdline") is not None else MemoryCode(mem)

    @property
    def console(self) -> list[str]:
        """Every console line of the session, the hypervisor's and the guest's, in arrival order."""
        return list(self.session.lines) if self.session is not None else []

    @property
    def hv_console(self) -> list[str]:
        """The hypervisor's own lines (its private channel: nothing the guest printed): facts about
        the run are read from these only."""
        return list(self.session.hv_lines) if self.session is not None else []

    def tsc_hz(self) -> int | None:
        """TSC ticks per second: the hypervisor's PIT calibration (its 'timer: TSC N kHz' line), if
        seen; for Bochs' frame stream the rate measured against the host clock (hvtrace.trace.tsc_rate),
        once records have arrived for a second (the PIT's is Bochs' emulated time)."""
        if isinstance(self.stream, FrameStream):
            return self.arrivals.rate()
        return self.pit_tsc_hz()

    def pit_tsc_hz(self) -> int | None:
        for line in self.hv_console:
            m = TSC_RE.search(line)
            if m:
                return int(m.group(1)) * 1000
        return None

    # ----------------------------------------------------------------- polling (a caller's own loop)
    def poll(self) -> Records:
        """The records that arrived since the last poll, every CPU, unfiltered, in arrival order.

        For callers with their own loop (the TUI's poller); :meth:`run` is the loop with stop
        conditions. Raises TraceError, OSError or ValueError when the source is lost (RAM file gone)."""
        recs = self.stream.poll()
        self.arrivals.observe(recs)
        return recs

    def final_tsc_hz(self) -> tuple[int | None, str]:
        """The rate a trace file keeps and its source: as :meth:`tsc_hz`; a frame stream too short to
        measure keeps the PIT's, said to be Bochs' emulated time."""
        hz, frames = self.tsc_hz(), isinstance(self.stream, FrameStream)
        if hz:
            return hz, TSC_RATE_SOURCE if frames else PIT_SOURCE
        return self.pit_tsc_hz(), PIT_EMULATED_SOURCE if frames else PIT_SOURCE

    def alive(self) -> bool:
        """Whether the source can still produce records (the emulator, or the attached session, runs)."""
        return self.stream.alive()

    def lost(self) -> int:
        """Records lost so far, all CPUs (the rings overflowed before they were read)."""
        return sum(self.stream.lost_by_cpu().values())

    def lost_where(self) -> dict[str, int]:
        """Where the records counted by :meth:`lost` went (hvtrace.trace.streams.RecordStream)."""
        return self.stream.lost_where()

    def end_state(self) -> str:
        """One line on how the session ended, once :meth:`alive` is False: its result when known, else
        the emulator's exit status; ``(session gone)`` for an attached session or one already closed."""
        session = self.session
        if session is not None and session.result is None and session.proc is not None:
            return f"VM exited (code {session.proc.poll()})"
        result = session.result if session is not None else None
        return "VM exited" + (f": {result.message}" if result is not None else " (session gone)")

    @property
    def session_pid(self) -> int | None:
        """The emulator's pid when this capture started the session, else None."""
        session = self.session
        return session.proc.pid if session is not None and session.proc is not None else None

    @property
    def gdb_port(self) -> int | None:
        """The gdb port of the session this capture started (QEMU's gdbstub, or the hypervisor's resident
        stub: QEMU with --gdb-stub hv, Bochs started with a gdb port), else None."""
        session = self.session
        if isinstance(session, (QemuSession, BochsSession)):
            return session.gdb_port
        return None

    def _drain_after_exit(self) -> Records:
        """The session has ended: read what is left (Bochs: the stdout tail; rings: what remains)."""
        if self.session is not None and self.session.result is None:
            self.session.wait(timeout=30)
        if isinstance(self.stream, FrameStream):
            self.stream.final = True
        return self.stream.poll()

    # ----------------------------------------------------------------- the loop
    def run(
        self,
        sink: Callable[[Records], None],
        *,
        count: int | None = None,
        duration: float | None = None,
        until_reason: str | None = None,
        filt: Filter | None = None,
        progress: Callable[[str], None] | None = None,
        interval: float = 0.002,
        on_lost: Callable[[dict[int, int]], None] | None = None,
    ) -> str:
        """Poll records into ``sink`` until a stop condition; returns why it stopped."""
        filt = filt or Filter()
        t0 = time.monotonic()
        self.progress = Progress(started=t0)
        last_shown = 0.0
        ended = False
        try:
            while True:
                live = self.alive()
                recs = self.poll()
                if not len(recs) and not live:
                    recs = self._drain_after_exit()
                    ended = True
                if len(recs):
                    stop = self._deliver(recs, sink, count, until_reason, filt)
                    if stop:
                        self.stop_reason = stop
                        return stop
                if on_lost is not None:
                    on_lost(self.stream.lost_by_cpu())
                self.progress.lost = self.lost()
                now = time.monotonic()
                if progress is not None and now - last_shown >= 0.5:
                    progress(self.progress.line())
                    last_shown = now
                if ended:
                    self.stop_reason = "session ended"
                    return self.stop_reason
                if duration is not None and now - t0 >= duration:
                    self.stop_reason = "duration"
                    return self.stop_reason
                if not len(recs):
                    time.sleep(interval)
        finally:
            self.progress.lost = self.lost()
            if progress is not None:
                progress(self.progress.line())

    def _deliver(
        self,
        recs: Records,
        sink: Callable[[Records], None],
        count: int | None,
        until: str | None,
        filt: Filter,
    ) -> str:
        recs = filt.apply(recs, self.vendor)
        stop = ""
        if until is not None and len(recs):
            hit = np.flatnonzero(reason_mask(recs, [until], self.vendor))
            if hit.size:
                recs = recs[: int(hit[0]) + 1]
                stop = f"reason {until}"
        if count is not None and self.progress.records + len(recs) >= count:
            recs = recs[: count - self.progress.records]
            stop = "count"
        if len(recs):
            sink(recs)
            self.progress.records += len(recs)
        return stop

    def collect(self, **kw: Any) -> Records:
        """Run until a stop condition (see :meth:`run`) and return the records, in arrival order."""
        parts: list[Records] = []
        self.run(parts.append, **kw)
        return np.concatenate(parts) if parts else empty()

    def record(self, path: Path, **kw: Any) -> dict[str, Any]:
        """Capture into a trace file; returns the summary written into its index."""
        meta = dict(self.meta)
        hz, source = (None, "") if isinstance(self.stream, FrameStream) else self.final_tsc_hz()
        meta.update(tsc_hz=hz, tsc_hz_source=source if hz else None)
        writer = TraceWriter(Path(path), meta)
        last_flush = [time.monotonic()]
        code = CodeCollector(self.code_reader())
        writer.code = code.code  # the code map, written into the summary at close

        def sink(recs: Records) -> None:
            writer.add(recs)
            code.add(recs)
            if time.monotonic() - last_flush[0] > 1.0:  # crash safety: complete chunks at least every second
                writer.flush()
                last_flush[0] = time.monotonic()

        reported: dict[int, int] = {}

        def on_lost(lost: dict[int, int]) -> None:
            for cpu, n in lost.items():
                if n > reported.get(cpu, 0):
                    writer.note_lost(cpu, n - reported.get(cpu, 0))
                    reported[cpu] = n

        try:
            why = self.run(sink, on_lost=on_lost, **kw)
        except BaseException:
            writer.close({"stop": "interrupted", "lost_total": sum(reported.values()), **self._lost_keys()})
            raise
        summary: dict[str, Any] = {"stop": why, "lost_total": sum(reported.values()), **self._lost_keys()}
        hz, source = self.final_tsc_hz()  # the calibration line (or arrivals) may come after the header
        if hz and not meta.get("tsc_hz"):
            summary.update(tsc_hz=hz, tsc_hz_source=source)
        writer.close(summary)
        return {"records": writer.records, **summary}

    def _lost_keys(self) -> dict[str, int]:
        return {f"lost_{k}": v for k, v in self.lost_where().items()}
