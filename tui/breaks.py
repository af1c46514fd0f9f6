"""Exit breakpoints from the TUI: one gdb (MI3, pygdbmi) on the session's gdbstub, owned by one thread.

The break itself is the hypervisor's (hv-break: a table entry checked in the exit path, gdb stops only
at ``hv_break_hit``), so non-matching exits never cost a gdb round trip. The controller starts gdb on
the first request (attaching stops the VM for a moment), then keeps the VM running between hits.
Requests (arm, delete, resume, step, clear) come from the UI thread through a queue; events go back
through ``notify`` (the app posts them as Textual messages, which is thread safe). gdbext answers
through its MI commands (-hv-break-insert, -hv-break-delete, -hv-exit-info: gdbext/mi_commands.py) with
MI fields, never text to parse; the VMCS / VMCB snapshot is hv-vmcs's text, shown as it is.

On a hit the VM stays stopped (all-stop: every vCPU) until resume / step / clear. ``step`` arms a
temporary ``any --cpu N`` entry — the next exit of that CPU — deleted again when it hits (or when the
step is abandoned by resume / clear): steps never accumulate entries. While a step is under way, hits
on other CPUs are passed over, so the step stops on the CPU it was asked for. ``clear`` deletes every
entry (the user's and a step's) and resumes.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hvtrace.exitcodes import LaunchError
from hvtrace.gdb_launch import port_of_ram
from hvtrace.gdbmi import Gdb, GdbError, MiRecord, is_stopped, stop_function

from .sources import LiveSource, Source

HIT_FUNCTION = "hv_break_hit"
POLL_S = 0.1
#: How long one gdb command may take. The hypervisor's resident stub (Bochs) answers through an
#: emulated 115200-baud UART: hv-vmcs at a hit reads a few KiB that way, minutes on a loaded host.
#: Only a broken session waits this long; a working one answers as fast as its stub does.
GDB_TIMEOUT = 600.0


class NoBreaks(Exception):
    """Why this source offers no exit breakpoints (shown instead of offering them)."""


def gdbstub_port(source: Source) -> int:
    """The gdb port of the session behind ``source``: the one the TUI started (QEMU's gdbstub, or the
    hypervisor's resident stub: Bochs, or QEMU with --gdb-stub hv), or the QEMU that maps the attached
    RAM file."""
    if not isinstance(source, LiveSource):
        raise NoBreaks("a replay has no VM to stop: j jumps to the next exit of the selected reason")
    cap = source.capture
    if cap is None:
        raise NoBreaks("not connected to a session yet")
    if cap.gdb_port is not None:
        return cap.gdb_port
    attached = cap.meta.get("attached")
    if not attached:
        raise NoBreaks(f"the {source.info.backend} session was started without a gdb stub")
    try:
        return port_of_ram(Path(str(attached)))
    except LaunchError as e:
        raise NoBreaks(str(e)) from e


@dataclass
class BreakHit:
    entry: int
    cpu: int
    reason: str
    text: list[str]  # the exit decoded, guest registers, disassembly (hv-break's stop screen)
    vmcs: list[str]  # hv-vmcs CPU: the VMCS / VMCB snapshot taken at the hit
    step: bool = False  # the hit of a step (next exit on that CPU)


@dataclass
class BreakEvent:
    """What the controller tells the UI. ``kind``: state, armed, deleted, hit, error."""

    kind: str
    message: str = ""
    hit: BreakHit | None = None
    entries: dict[int, tuple[str, str]] = field(default_factory=dict)  # armed: index -> (spec, description)
    state: str = ""  # the controller's state when the event was sent (off, connecting, running, ...)


class BreakController:
    def __init__(self, port: int, elf: Path, notify: Callable[[BreakEvent], object]) -> None:
        self.port = port
        self.elf = elf
        self._notify = notify
        self._requests: queue.Queue[tuple[str, str]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._gdb: Gdb | None = None
        self.state = "off"  # off, connecting, running, paused, error, closed
        self.entries: dict[int, tuple[str, str]] = {}  # the hypervisor's table: index -> (spec, description)
        self.hit: BreakHit | None = None
        self._step: tuple[int, int, int] | None = None  # (its entry, CPU, the break stepped from)

    # ---------------------------------------------------------------- UI thread
    def request(self, what: str, arg: str = "") -> None:
        """Queue ``arm SPEC``, ``delete N|all``, ``resume``, ``step``, ``clear`` (delete the hit's
        entry and resume). The first request starts gdb."""
        if self.state in ("error", "closed"):
            self._emit("error", f"breakpoints unavailable ({self.state})")
            return
        self._requests.put((what, arg))
        if self._thread is None:
            self.state = "connecting"
            self._thread = threading.Thread(target=self._run, name="hv-break gdb", daemon=True)
            self._thread.start()

    def close(self, timeout: float = 15.0) -> None:
        """Delete every entry, detach gdb (the VM runs on) and end the thread."""
        if self._thread is None:
            self.state = "closed"
            return
        self._requests.put(("close", ""))
        self._thread.join(timeout)

    # ---------------------------------------------------------------- gdb thread
    def _emit(self, kind: str, message: str = "", hit: BreakHit | None = None) -> None:
        self._notify(BreakEvent(kind, message, hit, dict(self.entries), self.state))

    def _set_state(self, state: str, message: str = "") -> None:
        self.state = state
        self._emit("state", message)

    def _run(self) -> None:
        try:
            self._connect()
            while self._serve():
                pass
        except Exception as e:  # gdb died, the session is gone, a timeout: shown, never a crash
            self.state = "error"
            self._emit("error", f"breakpoints: {e}")
        finally:
            if self._gdb is not None:
                self._gdb.close()
                self._gdb = None
            if self.state != "error":
                self.state = "closed"

    def _connect(self) -> None:
        gdb = self._gdb = Gdb()
        gdb.load(self.elf)
        gdb.ok("-gdb-set remotetimeout 120")  # a packet through the resident stub's emulated UART (Bochs)
        r = gdb.cmd(f"target remote 127.0.0.1:{self.port}", timeout=GDB_TIMEOUT)
        if r.error is not None:
            raise GdbError(f"gdbstub 127.0.0.1:{self.port}: {r.error}")
        self.state = "paused"  # attaching stopped the VM; the first request decides what follows

    def _serve(self) -> bool:
        """One step of the loop: a request, or (while the VM runs) gdb's output. False ends the thread."""
        assert self._gdb is not None
        try:
            what, arg = self._requests.get(timeout=POLL_S if self.state == "running" else 0.5)
        except queue.Empty:
            if self.state == "running":
                self._watch(self._gdb.read(0))
            elif self.state == "paused" and self.hit is None:
                self._resume()  # attached for a request that needed no stop: run on
            return True
        if what == "close":
            self._shutdown()
            return False
        if self.state == "running":
            stop = self._gdb.interrupt(GDB_TIMEOUT)  # the table is written while the VM is stopped
            self.state = "paused"
            self._watch(stop.records)
        try:
            getattr(self, f"_do_{what}")(arg)
        except GdbError as e:
            self._emit("error", str(e))
        if self.hit is None and self._requests.empty():
            self._resume()
        return True

    def _watch(self, records: list[MiRecord]) -> None:
        """Look for a stop in gdb's output: a hit pauses the VM and is reported; any other stop (our
        own interrupt, a signal) is left to the caller."""
        stop = next((r for r in records if is_stopped(r)), None)
        if stop is None:
            return
        self.state = "paused"
        if stop_function(stop) != HIT_FUNCTION:
            return
        self._on_hit(self._mi("-hv-exit-info")["hit"])

    def _on_hit(self, info: dict[str, Any]) -> None:
        """``info``: -hv-exit-info's hit tuple (number, cpu, reason, lines)."""
        assert self._gdb is not None
        entry, cpu, reason = int(info["number"]), int(info["cpu"]), str(info["reason"])
        lines = [f"hv-break {entry} hit on CPU {cpu}: {reason}", *(str(x) for x in info["lines"])]
        vmcs = self._gdb.cmd(f"hv-vmcs {cpu}", timeout=GDB_TIMEOUT, drain=0.1)
        # The hypervisor names the first matching entry, which may be another break on the same exit:
        # any exit of the stepped CPU ends the step.
        step = self._step is not None and self._step[1] == cpu
        if self._step is not None and not step:
            # Another CPU's hit (pending from before in all-stop, or a break of the user's meanwhile):
            # a step stays on its CPU, as gdb's step stays on its thread.
            self._resume()
            return
        if not step and entry not in self.entries:
            # A hit of a break deleted meanwhile (all-stop: another CPU's hit stays pending until the
            # next continue): nothing the user asked for, so the VM just runs on.
            self._resume()
            return
        if self._step is not None and step:
            step_entry, _, origin = self._step
            self._delete(str(step_entry))
            self._step = None
            if entry == step_entry:
                entry = origin  # the hit belongs to the break being stepped from: x clears that one
        self.hit = BreakHit(entry, cpu, reason, lines, vmcs.text.splitlines() or [vmcs.error or ""], step)
        self._emit("hit", f"break {entry} on CPU {cpu}: {reason}", self.hit)

    def _resume(self) -> None:
        assert self._gdb is not None
        self.hit = None
        r = self._gdb.cmd("-exec-continue", timeout=GDB_TIMEOUT, drain=0)
        if r.error is not None:
            raise GdbError(f"continue: {r.error}")
        self.state = "running"
        self._watch(r.records)  # a hit pending from another CPU (all-stop) is reported at once
        if self.hit is None:
            self._set_state("running")

    def _mi(self, command: str) -> dict[str, Any]:
        """An MI command of gdbext (mi_commands.py): its result's fields."""
        assert self._gdb is not None
        r = self._gdb.cmd(command, timeout=GDB_TIMEOUT, drain=0)
        if r.error is not None:
            raise GdbError(r.error)
        result = next(x for x in r.records if x["type"] == "result")
        payload: dict[str, Any] = result["payload"] or {}
        return payload

    def _delete(self, which: str) -> None:
        self._mi(f"-hv-break-delete {which}")
        if which == "all":
            self.entries.clear()
            self._step = None
        else:
            self.entries.pop(int(which), None)

    def _abandon_step(self) -> None:
        """Delete the entry of a step that did not hit (yet): a step never outlives the next decision."""
        if self._step is not None:
            step_entry = self._step[0]
            self._step = None
            self._delete(str(step_entry))

    # Requests (gdb thread, VM stopped).
    def _do_arm(self, spec: str) -> int:
        armed = self._mi(f"-hv-break-insert {spec}")["break"]
        index, what = int(armed["number"]), str(armed["what"])
        self.entries[index] = (spec, what)
        self._emit("armed", f"break {index}: {what}")
        return index

    def _do_delete(self, which: str) -> None:
        self._delete(which)
        self._emit("deleted", f"deleted break {which}")

    def _do_resume(self, _: str) -> None:
        self._abandon_step()
        self.hit = None

    def _do_step(self, _: str) -> None:
        if self.hit is None:
            raise GdbError("step: the VM is not stopped at a break")
        self._abandon_step()
        # the step's own entry is not one of the user's breaks (not in self.entries): x and the
        # break list show the user's breaks only
        armed = self._mi(f"-hv-break-insert any --cpu {self.hit.cpu}")["break"]
        self._step = (int(armed["number"]), self.hit.cpu, self.hit.entry)
        self.hit = None

    def _do_clear(self, _: str) -> None:
        """Delete every entry (the user's breaks and a step's) and resume."""
        self._do_delete("all")
        self.hit = None

    def _shutdown(self) -> None:
        assert self._gdb is not None
        try:
            if self.state == "running":
                self._gdb.interrupt(GDB_TIMEOUT)
            if self.entries:
                self._delete("all")  # the hypervisor stops checking; gdb's detach resumes the VM
        finally:
            self.state = "closed"
