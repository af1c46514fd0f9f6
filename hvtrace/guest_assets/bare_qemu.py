"""The bare-QEMU baseline: the Linux guest booted directly in QEMU TCG (no hypervisor), timed to its
marker line, to compare the hypervisor-hosted boot with."""

from __future__ import annotations

import contextlib
import os
import select
import shlex
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from hvtrace.exitcodes import ExitCode, LaunchError
from hvtrace.launch import procs
from hvtrace.launch.qemu import QEMU, headless, processors
from hvtrace.launch.qemu_options import cpu_option
from hvtrace.tools import require_tool

from .errors import GuestBootError
from .initramfs import MARKER, MARKER_RE

#: Kernel command line of a bare boot (extra words are appended).
BASE_APPEND = "console=ttyS0 panic=-1 quiet"
#: Same CPU model as the hypervisor's QEMU command line (hvtrace.launch.qemu), so the comparison is fair.
QEMU_CPU = cpu_option(None)


class BareBoot(NamedTuple):
    """Result of :func:`boot_bare_qemu`: the marker line and seconds from QEMU's start to it."""

    marker_line: str
    seconds: float


@dataclass(frozen=True)
class Marker:
    nproc: int
    cpus_online: str


def parse_marker(line: str) -> Marker | None:
    m = MARKER_RE.search(line)
    return Marker(int(m.group("nproc")), m.group("online")) if m else None


def bare_qemu_argv(
    *,
    kernel: Path,
    initrd: Path,
    cpus: int,
    memory_mb: int,
    append: str = "",
    qemu: str = QEMU,
) -> list[str]:
    """QEMU TCG booting ``kernel`` directly, serial on stdout (the same machine, CPU model and console
    wiring as the hypervisor's command line in hvtrace.launch.qemu)."""
    cmdline = f"{BASE_APPEND} {append}".strip()
    return [
        qemu,
        "-machine", "q35",
        *processors("tcg", QEMU_CPU, cpus, memory_mb),
        "-kernel", str(kernel),
        "-initrd", str(initrd),
        "-append", cmdline,
        *headless("console"),
        "-serial", "chardev:console",
        "-no-reboot",
    ]  # fmt: skip


def boot_bare_qemu(
    kernel: Path,
    initrd: Path,
    cpus: int = 2,
    memory_mb: int = 512,
    timeout: float = 180.0,
    *,
    append: str = "",
    on_line: Callable[[str], None] | None = None,
) -> BareBoot:
    """Boot ``kernel`` + ``initrd`` in QEMU TCG; return when the marker line appears.

    QEMU runs in its own process group and dies with us (hvtrace.launch.procs); it is always stopped
    before this returns or raises. Raises GuestBootError on timeout or when QEMU exits first, with
    the last console lines and QEMU's stderr.
    """
    if cpus < 1:
        raise LaunchError(ExitCode.USAGE, f"cpus must be at least 1 (got {cpus})")
    qemu = require_tool(QEMU, "for the bare-QEMU Linux boot")
    argv = bare_qemu_argv(
        kernel=kernel, initrd=initrd, cpus=cpus, memory_mb=memory_mb, append=append, qemu=qemu
    )
    console: list[str] = []
    err = bytearray()
    t0 = time.monotonic()
    proc = procs.spawn(argv)
    try:
        assert proc.stdout is not None
        assert proc.stderr is not None
        out_fd, err_fd = proc.stdout.fileno(), proc.stderr.fileno()
        open_fds = {out_fd, err_fd}
        buf = b""
        deadline = t0 + timeout
        while open_fds and (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select(list(open_fds), [], [], min(left, 0.5))
            for fd in ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    open_fds.discard(fd)
                    continue
                if fd == err_fd:
                    err += chunk
                    continue
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for raw in lines:
                    line = raw.decode(errors="replace").rstrip("\r")
                    console.append(line)
                    if on_line is not None:
                        on_line(line)
                    m = MARKER_RE.search(line)
                    if m is not None:
                        seconds = time.monotonic() - t0
                        # /init powers off right after the marker: let QEMU exit by itself.
                        with contextlib.suppress(subprocess.TimeoutExpired):
                            proc.wait(timeout=5.0)
                        return BareBoot(m.group(0), seconds)
        shown = "\n".join(console[-30:])
        stderr = err.decode(errors="replace").strip()
        detail = f"\n--- last console lines\n{shown}" if shown else "\n(no console output)"
        if stderr:
            detail += f"\n--- qemu stderr\n{stderr}"
        if not open_fds or proc.poll() is not None:
            rc = proc.wait()
            raise GuestBootError(
                ExitCode.NO_STATUS if rc == 0 else ExitCode.EMULATOR_FAILED,
                f"QEMU exited (status {rc}) before the guest printed {MARKER}: {shlex.join(argv)}{detail}",
            )
        raise GuestBootError(
            ExitCode.TIMEOUT, f"no {MARKER} line within {timeout:g} s: {shlex.join(argv)}{detail}"
        )
    finally:
        procs.stop(proc, grace=2.0)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
