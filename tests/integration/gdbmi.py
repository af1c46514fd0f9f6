"""A small pygdbmi driver for the hv-* command tests: real gdb, CLI commands over MI3."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pygdbmi.gdbcontroller import GdbController

from hvtrace import paths

EXTENSION = paths.repo_root() / "gdbext" / "hvtrace_gdb.py"
ELF = paths.repo_root() / "hv" / "build" / "hvtrace.elf"


@dataclass
class Reply:
    text: str  # console output
    error: str | None  # ^error message
    records: list[dict[str, Any]] = field(default_factory=list)


class Gdb:
    def __init__(self) -> None:
        self.ctl = GdbController(command=["gdb", "--interpreter=mi3", "-q", "-nx"])
        # Without async MI gdb reads no command while the target runs (no -exec-interrupt).
        self.ok("-gdb-set mi-async on")

    def close(self) -> None:
        """-gdb-exit first (gdb detaches from a remote target, leaving QEMU running for its owner),
        then make sure the process is gone."""
        proc = self.ctl.gdb_process
        if proc is not None and proc.poll() is None:
            try:
                self.ctl.write("-gdb-exit", timeout_sec=0, raise_error_on_timeout=False, read_response=False)
                proc.wait(timeout=10)
            except (OSError, ValueError, subprocess.TimeoutExpired):
                pass
        self.ctl.exit()

    def __enter__(self) -> Gdb:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _collect(self, done: Any, timeout: float) -> Reply:
        out: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.ctl.get_gdb_response(timeout_sec=0.2, raise_error_on_timeout=False)
            out.extend(got)
            if any(done(r) for r in out):
                break
        else:
            raise TimeoutError(f"gdb did not answer in {timeout}s: {out[-10:]}")
        # The stop handler prints after *stopped: drain whatever follows quickly.
        out.extend(self.ctl.get_gdb_response(timeout_sec=0.5, raise_error_on_timeout=False))
        text = "".join(r["payload"] for r in out if r["type"] == "console" and isinstance(r["payload"], str))
        err = next(
            (r["payload"]["msg"] for r in out if r["type"] == "result" and r["message"] == "error"), None
        )
        return Reply(text, err, out)

    def cmd(self, command: str, timeout: float = 60) -> Reply:
        """A CLI command; returns when gdb sends its result record (done / error / running)."""
        self.ctl.write(command, timeout_sec=0, raise_error_on_timeout=False, read_response=False)
        return self._collect(lambda r: r["type"] == "result", timeout)

    def ok(self, command: str, timeout: float = 60) -> str:
        r = self.cmd(command, timeout)
        assert r.error is None, f"{command}: {r.error}"
        return r.text

    def continue_until_stop(self, timeout: float = 60) -> Reply:
        self.ctl.write("-exec-continue", timeout_sec=0, raise_error_on_timeout=False, read_response=False)
        return self._collect(lambda r: r["type"] == "notify" and r["message"] == "stopped", timeout)

    def run_for(self, seconds: float) -> Reply:
        """continue, let the guest run, then interrupt (-exec-interrupt) and wait for the stop.

        In all-stop mode a breakpoint hit by another CPU at the same time as the reported one stays
        pending and is reported at the next continue: such a stop (before the interrupt) is resumed.
        """
        end = time.monotonic() + seconds
        for _ in range(5):
            self.ctl.write("-exec-continue", timeout_sec=0, raise_error_on_timeout=False, read_response=False)
            got = self._collect(lambda r: r["type"] == "result", 30).records
            while time.monotonic() < end and not any(self._stopped(r) for r in got):
                got = self.ctl.get_gdb_response(timeout_sec=0.2, raise_error_on_timeout=False)
            if not any(self._stopped(r) for r in got):
                break
        self.ctl.write("-exec-interrupt", timeout_sec=0, raise_error_on_timeout=False, read_response=False)
        return self._collect(self._stopped, 30)

    @staticmethod
    def _stopped(r: dict[str, Any]) -> bool:
        return bool(r["type"] == "notify" and r["message"] == "stopped")

    def complete(self, text: str) -> list[str]:
        """MI -complete: the completions gdb offers for ``text``."""
        r = self.ctl.write(f'-complete "{text}"', timeout_sec=10)
        res = next(x for x in r if x["type"] == "result")
        return list(res["payload"]["matches"]) if res["payload"] else []

    def load(self, elf: Path | None = ELF) -> None:
        self.ok(f"source {EXTENSION}")
        if elf is not None:
            self.ok(f"file {elf}")
