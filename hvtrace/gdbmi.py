"""A small gdb/MI3 driver (pygdbmi) for hvtrace's own tools: the TUI's exit breakpoints, the gdb tests
and benchmarks. Real gdb, CLI commands sent as MI lines, async MI so gdb reads commands while the
target runs (-exec-interrupt).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pygdbmi.gdbcontroller import GdbController

from hvtrace import paths
from hvtrace.tools import require_tool

MiRecord = dict[str, Any]


@dataclass
class Reply:
    text: str  # console output
    error: str | None  # ^error message
    records: list[MiRecord] = field(default_factory=list)

    def stop(self) -> MiRecord | None:
        """The *stopped record in this reply, if any."""
        return next((r for r in self.records if is_stopped(r)), None)


def is_stopped(r: MiRecord) -> bool:
    return bool(r["type"] == "notify" and r["message"] == "stopped")


def stop_function(r: MiRecord) -> str | None:
    """The function a *stopped record's frame is in (None when gdb names none)."""
    frame = r.get("payload", {}).get("frame") if isinstance(r.get("payload"), dict) else None
    return frame.get("func") if isinstance(frame, dict) else None


def console_text(records: list[MiRecord]) -> str:
    return "".join(r["payload"] for r in records if r["type"] == "console" and isinstance(r["payload"], str))


class Gdb:
    def __init__(self, gdb: str = "gdb") -> None:
        require_tool(gdb)  # a clear "install gdb (Debian package gdb)" instead of a pygdbmi traceback
        self.ctl = GdbController(command=[gdb, "--interpreter=mi3", "-q", "-nx"])
        # Without async MI gdb reads no command while the target runs (no -exec-interrupt).
        self.ok("-gdb-set mi-async on")
        # QEMU's gdbstub answers from its main loop; under TCG on a busy host the default 2 s is too short.
        self.ok("-gdb-set remotetimeout 30")

    def alive(self) -> bool:
        proc = self.ctl.gdb_process
        return proc is not None and proc.poll() is None

    def close(self) -> None:
        """-gdb-exit first (gdb detaches from a remote target, leaving QEMU running for its owner),
        then make sure the process is gone."""
        if self.alive():
            try:
                self.ctl.write("-gdb-exit", timeout_sec=0, raise_error_on_timeout=False, read_response=False)
                assert self.ctl.gdb_process is not None
                self.ctl.gdb_process.wait(timeout=10)
            except (OSError, ValueError, subprocess.TimeoutExpired):
                pass
        self.ctl.exit()

    def __enter__(self) -> Gdb:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, command: str) -> None:
        self.ctl.write(command, timeout_sec=0, raise_error_on_timeout=False, read_response=False)

    def read(self, timeout: float) -> list[MiRecord]:
        """Whatever gdb printed within ``timeout`` seconds (possibly nothing)."""
        if not self.alive():
            proc = self.ctl.gdb_process
            status = proc.returncode if proc is not None else None
            # a negative status is the signal that ended it (an internal error aborts: -6)
            raise ConnectionError(f"gdb exited (status {status})")
        got: list[MiRecord] = self.ctl.get_gdb_response(timeout_sec=timeout, raise_error_on_timeout=False)
        return got

    def _collect(self, done: Callable[[MiRecord], bool], timeout: float, drain: float = 0.5) -> Reply:
        out: list[MiRecord] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                out.extend(self.read(0.2))
            except ConnectionError as e:
                raise ConnectionError(f"{e}; its last output: {out[-10:]}") from None
            if any(done(r) for r in out):
                break
        else:
            raise TimeoutError(f"gdb did not answer in {timeout}s: {out[-10:]}")
        # The stop handler prints after *stopped: drain whatever follows quickly.
        out.extend(self.read(drain))
        err = next(
            (r["payload"]["msg"] for r in out if r["type"] == "result" and r["message"] == "error"), None
        )
        return Reply(console_text(out), err, out)

    def cmd(self, command: str, timeout: float = 60, drain: float = 0.5) -> Reply:
        """A CLI command; returns when gdb sends its result record (done / error / running)."""
        self.send(command)
        return self._collect(lambda r: r["type"] == "result", timeout, drain)

    def ok(self, command: str, timeout: float = 60) -> str:
        r = self.cmd(command, timeout)
        if r.error is not None:
            raise GdbError(f"{command}: {r.error}")
        return r.text

    def continue_until_stop(self, timeout: float = 60) -> Reply:
        self.send("-exec-continue")
        return self._collect(is_stopped, timeout)

    def step_instruction(self, timeout: float = 60) -> Reply:
        """stepi of the selected thread; returns with its stop."""
        self.send("-exec-step-instruction")
        return self._collect(is_stopped, timeout)

    def interrupt(self, timeout: float = 30) -> Reply:
        """-exec-interrupt and wait for the stop (which may be a breakpoint reached meanwhile)."""
        self.send("-exec-interrupt")
        return self._collect(is_stopped, timeout)

    def run_for(self, seconds: float) -> Reply:
        """continue, let the guest run, then interrupt (-exec-interrupt) and wait for the stop.

        In all-stop mode a breakpoint hit by another CPU at the same time as the reported one stays
        pending and is reported at the next continue: such a stop (before the interrupt) is resumed.
        """
        end = time.monotonic() + seconds
        for _ in range(5):
            self.send("-exec-continue")
            got = self._collect(lambda r: r["type"] == "result", 30).records
            while time.monotonic() < end and not any(is_stopped(r) for r in got):
                got = self.read(0.2)
            if not any(is_stopped(r) for r in got):
                break
        return self.interrupt()

    def complete(self, text: str) -> list[str]:
        """MI -complete: the completions gdb offers for ``text``."""
        r = self.ctl.write(f'-complete "{text}"', timeout_sec=10)
        res = next(x for x in r if x["type"] == "result")
        return list(res["payload"]["matches"]) if res["payload"] else []

    def load(self, elf: Path | bool | None = True) -> None:
        """Source the hv-* commands and load symbols: ``elf`` (True: the hypervisor image; None: none)."""
        self.ok(f"source {paths.gdb_extension()}")
        if elf is True:
            elf = paths.image_path()
        if isinstance(elf, Path):
            self.ok(f"file {elf}")


class GdbError(RuntimeError):
    """gdb answered a command with ^error."""
