"""What feeds the TUI: a live capture (rings in shared RAM, or a booted session) or a replay file.

Both answer ``poll() -> Records`` from the worker thread and ``clock()`` (the time the rates use: wall
time live, trace time in replay); replay controls come from the UI thread under a lock. ``code_reader()``
gives the instruction bytes at a RIP for the log: guest memory live, the file's code map in replay.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from hvtrace.launch.guest import GuestSpec
from hvtrace.trace.capture import Capture
from hvtrace.trace.code import CodeMap, CodeReader
from hvtrace.trace.errors import TraceError
from hvtrace.trace.records import Records, empty
from hvtrace.trace.replay import Replay


@dataclass
class SourceInfo:
    backend: str = "?"
    vendor: int = 0
    vendor_name: str = "?"
    cpus: int = 1
    guest: str = "?"
    tsc_hz: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)


class Source(Protocol):
    info: SourceInfo
    replay: bool

    def connect(self) -> None:
        """Blocking setup (boot / attach / load); raises on failure. Called from the worker thread."""

    def poll(self) -> Records: ...

    def clock(self) -> float: ...

    def state(self) -> str:
        """Connection state for the status bar."""
        ...

    def lost(self) -> int: ...

    def code_reader(self) -> CodeReader | None:
        """Instruction bytes at a RIP (after ``connect``); None when there is nothing to read them from."""
        ...

    def close(self) -> None: ...


def _info_from(meta: dict[str, Any], tsc_hz: float | None) -> SourceInfo:
    return SourceInfo(
        backend=str(meta.get("backend") or "?"),
        vendor=int(meta.get("vendor") or 0),
        vendor_name=str(meta.get("vendor_name") or "?"),
        cpus=int(meta.get("cpus") or 1),
        guest=str(meta.get("guest") or "?"),
        tsc_hz=tsc_hz,
        meta=dict(meta),
    )


class LiveSource:
    """A capture: ``Capture.start`` (boot) or ``Capture.attach`` (a running `hvtrace run`)."""

    replay = False

    def __init__(self, opener: Callable[[], Capture], *, label: str) -> None:
        self._opener = opener
        self.capture: Capture | None = None
        self.info = SourceInfo(backend=label)
        self._state = "starting"
        self._dead = False
        self._lock = threading.Lock()

    @classmethod
    def start(
        cls,
        *,
        backend: str = "qemu",
        cpus: int = 1,
        cmdline: str = "",
        guest: GuestSpec | None = None,
        gdb_port: int | None = None,
        **options: Any,
    ) -> LiveSource:
        """A session booted by ``Capture.start`` (``options``: its memory_mb, timeout, cpu_model,
        qemu_args, gdb_stub, ...) when the worker connects. ``gdb_port``: the session's gdb port (0 or
        None: a free one). A Bochs session always starts with the hypervisor's resident gdb stub
        (gdbstub=1 on COM3): Bochs has no gdbstub of its own, and the exit breakpoints (`b`) need one."""
        if backend == "bochs" and gdb_port is None:
            gdb_port = 0

        def opener() -> Capture:
            return Capture.start(
                backend=backend,
                cpus=cpus,
                cmdline=cmdline,
                guest=guest,
                gdb_port=gdb_port,
                **{"boot_timeout": 60, "timeout": 3600, **options},
            )

        src = cls(opener, label=backend)
        src.info.cpus = cpus
        if guest is not None:
            src.info.guest = guest.name
        else:
            src.info.guest = "selftest" + ("+storm" if "storm=1" in cmdline.split() else "")
        return src

    @classmethod
    def attach(cls, ram: Path) -> LiveSource:
        return cls(lambda: Capture.attach(ram=ram), label="qemu (attached)")

    def connect(self) -> None:
        self._state = "booting" if self.info.backend in ("qemu", "bochs") else "attaching"
        cap = self._opener()
        with self._lock:
            self.capture = cap
        info = _info_from(cap.meta, None)
        if self.info.guest != "?" and info.guest == "?":
            info.guest = self.info.guest
        if cap.meta.get("attached"):
            info.backend += " (attached)"  # as before the attach: a session the TUI did not start
        self.info = info
        # The port of a session the TUI started, as `hvtrace run` prints it (`hvtrace gdb --port N`).
        port = None if cap.meta.get("attached") else cap.gdb_port
        self._state = "live" if port is None else f"live, gdb port {port}"

    def poll(self) -> Records:
        cap = self.capture
        if cap is None:
            return empty()
        live = cap.alive()
        try:
            recs = cap.poll()
        except (TraceError, ValueError, OSError) as e:
            self._state = f"lost: {e}"
            self._dead = True
            return empty()
        if not self.info.tsc_hz:
            hz = cap.tsc_hz()
            if hz:
                self.info.tsc_hz = float(hz)
        if not live and not len(recs) and not self._dead:
            self._dead = True
            self._state = cap.end_state()
        return recs

    def clock(self) -> float:
        return time.monotonic()

    def state(self) -> str:
        return self._state

    def fail(self, message: str) -> None:
        self._state = f"error: {message}"
        self._dead = True

    def lost(self) -> int:
        cap = self.capture
        return cap.lost() if cap is not None else 0

    def code_reader(self) -> CodeReader | None:
        cap = self.capture
        return cap.code_reader() if cap is not None else None

    @property
    def session_pid(self) -> int | None:
        cap = self.capture
        return cap.session_pid if cap is not None else None

    def close(self) -> None:
        with self._lock:
            cap, self.capture = self.capture, None
        if cap is not None:
            cap.close()


class ReplaySource:
    """A trace file through the replay engine, paced by the trace's TSC at ``speed`` x real time."""

    replay = True

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.engine: Replay | None = None
        self.info = SourceInfo(backend="replay")
        self._lock = threading.Lock()
        self._anchor_wall = time.monotonic()
        self._anchor_tsc = 0
        self.paused = False
        self.speed = 1.0
        self.seeked = False  # set by a seek: the app rebuilds its views from the records before it

    def connect(self) -> None:
        engine = Replay(self.path)
        meta = dict(engine.file.meta)
        self.info = _info_from(meta, engine.tsc_hz)
        self.info.backend = f"replay {self.path.name} ({meta.get('backend') or '?'})"
        with self._lock:
            self.engine = engine
            self._anchor_tsc = engine.start_tsc
            self._anchor_wall = time.monotonic()

    @property
    def hz(self) -> float:
        return float(self.info.tsc_hz or 1e9)

    def _now_tsc(self) -> int:
        if self.paused:
            return self._anchor_tsc
        return self._anchor_tsc + int((time.monotonic() - self._anchor_wall) * self.speed * self.hz)

    def _reanchor(self, tsc: int) -> None:
        self._anchor_tsc = tsc
        self._anchor_wall = time.monotonic()

    def poll(self) -> Records:
        with self._lock:
            eng = self.engine
            if eng is None or self.paused or eng.position >= len(eng):
                return empty()
            target = self._now_tsc()
            end = int(np.searchsorted(eng.records["tsc"], np.uint64(target), side="right"))
            end = min(max(end, eng.position), len(eng))
            out = eng.records[eng.position : end]
            eng.position = end
            if eng.position < len(eng) and not len(out):
                gap = int(eng.records["tsc"][eng.position]) - target
                if gap > self.hz * 2:  # idle gaps longer than 2 s of trace time are skipped
                    self._reanchor(int(eng.records["tsc"][eng.position]))
            return out

    def clock(self) -> float:
        with self._lock:
            eng = self.engine
            base = eng.start_tsc if eng is not None else 0
            return (self._now_tsc() - base) / self.hz

    def state(self) -> str:
        eng = self.engine
        if eng is None:
            return "loading"
        pos, n = eng.position, len(eng)
        how = "end" if pos >= n else "paused" if self.paused else "playing"
        return f"{how} x{self.speed:g} record {pos}/{n}"

    def lost(self) -> int:
        eng = self.engine
        return sum(eng.file.lost().values()) if eng is not None else 0

    def code_reader(self) -> CodeReader | None:
        eng = self.engine
        return CodeMap(eng.file.code) if eng is not None else None

    # ---------------------------------------------------------------- controls (UI thread)
    def toggle_pause(self) -> None:
        with self._lock:
            if self.paused:
                self.paused = False
                self._reanchor(self._anchor_tsc)
            else:
                self._anchor_tsc = self._now_tsc()
                self.paused = True

    def set_speed(self, speed: float) -> None:
        with self._lock:
            self._anchor_tsc = self._now_tsc()
            self._anchor_wall = time.monotonic()
            self.speed = min(max(speed, 1 / 64), 4096.0)

    def _after_seek(self, eng: Replay) -> None:
        tsc = int(eng.records["tsc"][eng.position]) if eng.position < len(eng) else eng.end_tsc
        self._reanchor(tsc)
        self.seeked = True

    def seek_index(self, i: int) -> None:
        with self._lock:
            if self.engine is not None:
                self.engine.seek_index(i)
                self._after_seek(self.engine)

    def seek_time(self, seconds: float) -> None:
        with self._lock:
            if self.engine is not None:
                self.engine.seek_time(seconds)
                self._after_seek(self.engine)

    def next_reason(self, name: str) -> int | None:
        """Jump to the next record of a reason (the app shows everything up to and including it)."""
        with self._lock:
            eng = self.engine
            if eng is None:
                return None
            at = eng.next_reason(name)
            if at is None:
                return None
            eng.position = at + 1  # the hit itself is part of what has been played
            self.paused = True
            self._after_seek(eng)
            self._anchor_tsc = int(eng.records["tsc"][at])
            return at

    def played(self) -> Records:
        """Every record before the current position (for rebuilding the views after a seek)."""
        with self._lock:
            eng = self.engine
            self.seeked = False
            return eng.records[: eng.position] if eng is not None else empty()

    def close(self) -> None:
        with self._lock:
            self.engine = None
